-- Hosts enrolled to run watchpost-agent: the host's name (what its readings are recorded under), its
-- environment, the hash of its token (SHA-256, like API tokens), and the newest batch sequence the hub has
-- taken from it, so a batch sent again after a lost answer, or a hub restart, is not recorded twice.
CREATE TABLE agents (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    token_hash  BYTEA  NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT,
    acked_seq   BIGINT NOT NULL DEFAULT 0,
    seen_ms     BIGINT
);
-- One live enrolment per host name; a revoked one may be replaced.
CREATE UNIQUE INDEX agents_live_name ON agents (name) WHERE revoked_ms IS NULL;
