# The Vault policy of the bisman-ops bot (its AppRole or Kubernetes auth role), for the seed's layout:
# every rotatable password in secret/bisman/db, the bot's own target password in secret/bisman/ops, the
# database engine's connection "bisman", and the audit witness in secret/bisman/audit-anchors.
#   vault policy write bisman-ops deploy/vault/bisman-ops.hcl
# tests/jobs/audit_anchor_test.ts gives the Vault stand-in exactly this policy.

# Rotation: read the current version, write the next one with check-and-set (update), read history ages.
path "secret/data/bisman/db" {
  capabilities = ["read", "update"]
}
path "secret/metadata/bisman/db" {
  capabilities = ["read"]
}

# The bot's own connection secrets named in its config (vault: bisman/ops#password).
path "secret/data/bisman/ops" {
  capabilities = ["read"]
}

# /bisman rotate root: Vault's database engine changes its own root password.
path "database/rotate-root/bisman" {
  capabilities = ["update"]
}

# The audit witness: each anchor, and each approved run (runs/<request>), is a new entry (create, with
# check-and-set 0); nothing here lets the bot
# overwrite (update), delete, undelete or destroy an anchor, or change the folder's metadata.
path "secret/data/bisman/audit-anchors/*" {
  capabilities = ["create", "read"]
}
path "secret/metadata/bisman/audit-anchors/*" {
  capabilities = ["list"]
}
