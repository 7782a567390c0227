package pgstate

// migrations are this package's steps (line "worklog"), in order. Never
// edit a step that has landed: append one.
var migrations = []Migration{
	{Line: "worklog", Version: 1, Name: "replicas, reader leases, audit trail, keys", SQL: `
CREATE TABLE worklog_replica (
	id         text        PRIMARY KEY,
	host       text        NOT NULL,
	pid        int         NOT NULL,
	started_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);
COMMENT ON TABLE worklog_replica IS 'worklog processes that hold reader leases; a row whose expires_at has passed is a dead process';
CREATE TABLE worklog_reader_lease (
	replica_id text   NOT NULL REFERENCES worklog_replica (id) ON DELETE CASCADE,
	generation bigint NOT NULL,
	PRIMARY KEY (replica_id, generation)
);
COMMENT ON TABLE worklog_reader_lease IS 'store generations that readers of a live replica hold; writers keep their files';
CREATE TABLE worklog_audit (
	seq  bigint      PRIMARY KEY,
	at   timestamptz NOT NULL DEFAULT now(),
	line text        NOT NULL
);
COMMENT ON TABLE worklog_audit IS 'the audit trail: one JSON line per action, each with the SHA-256 of the line before (prev)';
CREATE TABLE worklog_key (
	name       text        PRIMARY KEY,
	key        text        NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE worklog_key IS 'secret signing keys shared by every replica (page cursors, download links)';
`},
}
