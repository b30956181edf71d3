-- The first schema of the Postgres store. Runs inside the migration
-- transaction with search_path set to the store's schema.

-- Ids sort by bytes, as Go compares strings: COLLATE "C".
CREATE TABLE runs (
    id            text COLLATE "C" PRIMARY KEY,
    created_at    bigint NOT NULL,
    status        text   NOT NULL,
    version       bigint NOT NULL,
    -- The run's deadline while it can still expire; NULL once the run has
    -- ended (the run's own expires_at, in data, may stay set).
    expires_at    bigint,
    -- The sweeper (a Store) whose DueRuns last claimed the run, and until
    -- when on that sweeper's clock (see DueRuns).
    claimed_by    text,
    claimed_until bigint,
    -- The run's canonical JSON (lifecycle.Run.MarshalJSON).
    data          text   NOT NULL
) WITH (fillfactor = 80);

CREATE INDEX runs_due ON runs (expires_at, id) WHERE expires_at IS NOT NULL;

-- Runs claimed by a sweeper and not yet ended: a few at any time, for
-- NextDeadline.
CREATE INDEX runs_claimed ON runs (claimed_until) WHERE expires_at IS NOT NULL AND claimed_until IS NOT NULL;

CREATE TABLE steps (
    id         text COLLATE "C" PRIMARY KEY,
    run_id     text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    status     text   NOT NULL,
    version    bigint NOT NULL,
    -- The step's canonical JSON (lifecycle.Step.MarshalJSON).
    data       text   NOT NULL
-- Room on each page for a step's new versions: an update that stays on
-- its page and changes no indexed column (a HOT update) adds no index
-- entries.
) WITH (fillfactor = 70);

-- ListSteps and StepsInProgress. status stays out of every index so that
-- a transition can be a HOT update.
CREATE INDEX steps_by_run ON steps (run_id, created_at, id);

CREATE TABLE events (
    seq       bigint PRIMARY KEY,
    type      text    NOT NULL,
    at        bigint  NOT NULL,
    is_run    boolean NOT NULL,
    object_id text    NOT NULL,
    -- The object's version after the event.
    version   bigint  NOT NULL,
    -- The object after the event, as canonical JSON.
    data      text    NOT NULL
);

-- The log's head: the last sequence number given out. Committers take the
-- next numbers by updating this one row inside their transaction, which
-- keeps the log gapless and in commit order (see the package doc).
CREATE TABLE log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL
);

INSERT INTO log_head (seq) VALUES (0);
