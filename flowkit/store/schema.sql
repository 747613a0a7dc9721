-- flowkit event log: the public tables users query with SQL.
-- Every table carries run_id. Times are UTC TIMESTAMPs; JSON columns hold JSON text.
-- Large text columns use zstd, which compresses neighbouring rows together: the prompts of a
-- firm repeat (system prompts, quoted reports), so whole requests take ~1 KB per decision.
-- as_of is the decision time (the moment after which no data was visible to agents).

CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR,      -- short unique id, e.g. 20261124-074712-3fa9
    workflow_name   VARCHAR,
    workflow_path   VARCHAR,
    workflow_hash   VARCHAR,      -- sha256 of the workflow file bytes
    mode            VARCHAR,      -- decide | backtest | train | replay
    parent_run_id   VARCHAR,      -- for replay/resume/seeds: the run this one derives from
    status          VARCHAR,      -- running | completed | failed | budget_exceeded | interrupted
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP,
    config          JSON USING COMPRESSION zstd, -- the resolved workflow (no secrets)
    error           VARCHAR,
    flowkit_version VARCHAR,
    decision_times  INTEGER,      -- how many decision times the run covers (progress: checkpoints)
    pid             INTEGER,      -- the process running it (its last start or resume)
    host            VARCHAR       -- ... on this machine
);

-- Every start, resume and end of a run, kept when a resume supersedes the attempt it continues.
CREATE TABLE IF NOT EXISTS run_history (
    run_id     VARCHAR,
    event      VARCHAR,          -- started | resumed | completed | failed | interrupted | budget_exceeded
    time       TIMESTAMP,        -- when it happened
    as_of      TIMESTAMP,        -- resumed: the checkpoint it continues after (NULL = from the start)
    reason     VARCHAR,          -- the error that stopped the run; resumed: the status it resumed from
    superseded BOOLEAN           -- a later resume redid what came after this event's attempt
);

CREATE TABLE IF NOT EXISTS steps (
    run_id      VARCHAR,
    seq         BIGINT,          -- order in which steps finished within the run
    step_id     VARCHAR,         -- path in the compiled graph, e.g. research_debate/r2/bull
    symbol      VARCHAR,
    as_of       TIMESTAMP,
    agent       VARCHAR,         -- agent id (NULL for pattern nodes)
    role        VARCHAR,
    pattern     VARCHAR,         -- agent | sequential | parallel | debate | hierarchical | broadcast
    round       INTEGER,         -- debate/broadcast/hierarchical round, NULL otherwise
    started_at  TIMESTAMP,
    finished_at TIMESTAMP,
    duration_ms DOUBLE,
    status      VARCHAR,         -- ok | failed | skipped | cancelled
    input       JSON USING COMPRESSION zstd, -- what the step saw (rendered prompt or child summary)
    output      JSON USING COMPRESSION zstd, -- the validated typed output
    error       VARCHAR,
    repairs     JSON             -- repairs made to the answer before it validated (list of text)
);

CREATE TABLE IF NOT EXISTS model_calls (
    run_id            VARCHAR,
    call_id           VARCHAR,
    step_id           VARCHAR,
    symbol            VARCHAR,
    as_of             TIMESTAMP,
    agent             VARCHAR,
    model             VARCHAR,   -- the model id that answered (after fallbacks)
    attempt           INTEGER,   -- 1-based attempt number within the step (retries, re-asks, fallbacks)
    request           JSON USING COMPRESSION zstd, -- messages sent, whole (older files: see model_calls_full)
    response          VARCHAR USING COMPRESSION zstd, -- raw text (or tool calls JSON) returned
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          DOUBLE,
    latency_ms        DOUBLE,
    cached            BOOLEAN,
    cache_key         VARCHAR,
    error             VARCHAR,
    started_at        TIMESTAMP,
    superseded        BOOLEAN    -- an attempt a resume redid: kept (and its cost counted), not the result
);

-- Content-addressed lines of prompts that older files' requests reference (content_parts), shared
-- by every call and run in the file (no run_id); model_calls_full rebuilds them. No longer written.
CREATE TABLE IF NOT EXISTS prompt_parts (
    part_id VARCHAR,             -- 16 hex digits of blake2b(text)
    text    VARCHAR              -- one line of a message, with its line end
);

CREATE TABLE IF NOT EXISTS decisions (
    run_id        VARCHAR,
    symbol        VARCHAR,
    as_of         TIMESTAMP,
    agent         VARCHAR,       -- the agent whose output is the firm's decision
    action        VARCHAR,       -- BUY | SELL | HOLD
    size_pct      DOUBLE,        -- requested size, % of equity
    target_weight DOUBLE,        -- signed weight of equity once the approved order fills (decision price)
    confidence    DOUBLE,        -- 0..1
    entry         DOUBLE,
    stop_loss     DOUBLE,
    take_profit   DOUBLE,
    reasoning     VARCHAR USING COMPRESSION zstd,
    status        VARCHAR        -- ok | invalid (held: no usable model answer; why in reasoning)
);

CREATE TABLE IF NOT EXISTS risk_reviews (
    run_id        VARCHAR,
    symbol        VARCHAR,
    as_of         TIMESTAMP,
    verdict       VARCHAR,       -- approve | resize | reject
    rule          VARCHAR,       -- the rule that decided (NULL on plain approve)
    requested_qty DOUBLE,        -- signed quantity the proposal asked for
    approved_qty  DOUBLE,        -- signed quantity allowed through
    details       JSON USING COMPRESSION zstd -- the numbers that decided it, every rule checked
);

CREATE TABLE IF NOT EXISTS orders (
    run_id       VARCHAR,
    order_id     VARCHAR,        -- deterministic client order id (idempotency key)
    symbol       VARCHAR,
    as_of        TIMESTAMP,      -- decision time that produced the order
    side         VARCHAR,        -- buy | sell
    quantity     DOUBLE,         -- positive
    order_type   VARCHAR,        -- market | limit
    limit_price  DOUBLE,
    reason       VARCHAR,        -- decision | stop_loss | take_profit | drawdown_halt | rebalance | data_end
    status       VARCHAR,        -- submitted | filled | rejected | cancelled | expired
    broker       VARCHAR,        -- paper | ccxt:<exchange>
    submitted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS fills (
    run_id     VARCHAR,
    fill_id    VARCHAR,
    order_id   VARCHAR,
    symbol     VARCHAR,
    time       TIMESTAMP,
    side       VARCHAR,
    quantity   DOUBLE,
    price      DOUBLE,           -- executed price including slippage
    fee        DOUBLE,
    slippage   DOUBLE            -- cost of slippage in quote currency
);

CREATE TABLE IF NOT EXISTS portfolio (
    run_id         VARCHAR,
    time           TIMESTAMP,
    cash           DOUBLE,
    equity         DOUBLE,
    gross_exposure DOUBLE,       -- sum |position value| / equity
    drawdown       DOUBLE,       -- from peak equity, <= 0
    positions      JSON USING COMPRESSION zstd -- {symbol: {qty, avg_cost, price, value, unrealized_pnl}}
);

CREATE TABLE IF NOT EXISTS beliefs (
    belief_id  VARCHAR,
    run_id     VARCHAR,          -- the training run that produced it
    episode    INTEGER,
    created_at TIMESTAMP,
    workflow   VARCHAR,
    text       VARCHAR,          -- the sentence agents read
    agents     JSON,             -- agent ids it is propagated to
    condition  JSON,             -- structured condition the offline model can evaluate
    effect     JSON,             -- structured effect (e.g. {"bias": -0.2})
    evidence   JSON,             -- the episode comparison that produced it
    frozen     BOOLEAN
);

CREATE TABLE IF NOT EXISTS checkpoints (
    run_id     VARCHAR,
    seq        BIGINT,
    as_of      TIMESTAMP,        -- last decision time fully done
    state      JSON USING COMPRESSION zstd, -- portfolio/broker/risk state to resume from
    created_at TIMESTAMP
);

-- The risk engine's state at each decision time, after the day's equity (see flowkit/risk/engine.py).
CREATE TABLE IF NOT EXISTS risk_state (
    run_id         VARCHAR,
    time           TIMESTAMP,    -- the decision time
    equity         DOUBLE,
    daily_return   DOUBLE,       -- equity return since the previous decision time (NULL first)
    cvar           DOUBLE,       -- CVaR of the trailing returns (negative = loss; NULL before any)
    reference_cvar DOUBLE,       -- the calmest CVaR of the previous `window` decision times
    risk_averse    BOOLEAN,      -- the CVaR trigger is on: new exposure x cvar.scale
    halted         BOOLEAN,      -- the drawdown halt has latched
    drawdown       DOUBLE,       -- fraction below the peak equity (<= 0)
    reason         VARCHAR       -- why risk_averse is what it is
);

CREATE TABLE IF NOT EXISTS metrics (
    run_id   VARCHAR,
    strategy VARCHAR,            -- firm | buy_and_hold | sma_crossover | macd
    symbol   VARCHAR,            -- NULL for the whole portfolio
    metrics  JSON
);

CREATE TABLE IF NOT EXISTS model_cache (
    cache_key  VARCHAR,          -- sha256 of (model, messages, parameters)
    model      VARCHAR,
    response   JSON USING COMPRESSION zstd, -- the ModelResponse payload to replay
    created_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS lessons (
    run_id      VARCHAR,
    symbol      VARCHAR,
    as_of       TIMESTAMP,       -- when the lesson became known (outcome bar closed)
    decided_at  TIMESTAMP,       -- the decision it judges
    agents      JSON,            -- agents it is fed to
    text        VARCHAR USING COMPRESSION zstd,
    outcome_pct DOUBLE           -- signed return of the decision over the horizon, %
);
