// The baseline of bench/load.ts: a plain @slack/bolt app under Node.js with Bolt's own HTTPReceiver, whose
// /bisman listener acks with the reply the bot gives to `/bisman help` (read from REPLY_FILE). Same signed
// requests, same load; the bot additionally parses and authorises the command, renders the reply, and
// appends to its audit log in PostgreSQL after each ack.
//
//   BOLT_MODULES=<folder with node_modules/@slack/bolt> SIGNING_SECRET=… REPLY_FILE=reply.json \
//     node bench/baseline/bolt_baseline.mjs
//
// Prints one JSON line {"port": <n>} once it listens on 127.0.0.1; exits on SIGTERM.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(`${process.env.BOLT_MODULES}/package.json`);
const { App, HTTPReceiver, LogLevel } = require("@slack/bolt");

const reply = JSON.parse(readFileSync(process.env.REPLY_FILE, "utf8"));
const receiver = new HTTPReceiver({
  signingSecret: process.env.SIGNING_SECRET,
  endpoints: "/slack/events",
  logLevel: LogLevel.ERROR,
});
const app = new App({
  token: "xoxb-baseline",
  receiver,
  // As in the bot: no auth.test per request.
  tokenVerificationEnabled: false,
  botId: "B0BASELINE",
  botUserId: "U0BASELINE",
  logLevel: LogLevel.ERROR,
});
app.command("/bisman", async ({ ack }) => {
  await ack(reply);
});

const server = await app.start({ port: 0, host: "127.0.0.1" });
console.log(JSON.stringify({ port: server.address().port }));
process.on("SIGTERM", async () => {
  await app.stop();
  process.exit(0);
});
