-- The example pipeline's tables.
--
-- customers: the system of record for customer reference data; the
-- `customers` topic carries its changes, and enrich_orders falls back to this
-- table when its local cache has no entry for a customer.
CREATE TABLE customers (
    customer_id   text PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL DEFAULT '',
    country       char(2) NOT NULL,
    segment       text NOT NULL,
    signed_up_at  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- order_facts: one row per enriched order event, keyed by its event id. A
-- redelivered event finds its row and changes nothing; only rows inserted
-- for the first time feed the aggregates below (one statement, one
-- transaction: see consumers/order_stats.py).
CREATE TABLE order_facts (
    event_id     uuid PRIMARY KEY,
    order_id     text NOT NULL,
    customer_id  text NOT NULL,
    country      char(2) NOT NULL,
    minute       timestamptz NOT NULL,
    amount_eur   numeric(16, 2) NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
-- "A customer's orders, newest first" (the demo's drill-down).
CREATE INDEX order_facts_by_customer ON order_facts (customer_id, minute DESC);

CREATE TABLE customer_totals (
    customer_id    text PRIMARY KEY,
    orders         bigint NOT NULL,
    revenue_eur    numeric(18, 2) NOT NULL,
    last_order_at  timestamptz NOT NULL
);
-- "Top customers by revenue".
CREATE INDEX customer_totals_by_revenue ON customer_totals (revenue_eur DESC);

CREATE TABLE revenue_by_minute (
    minute       timestamptz NOT NULL,
    country      char(2) NOT NULL,
    orders       bigint NOT NULL,
    revenue_eur  numeric(18, 2) NOT NULL,
    PRIMARY KEY (minute, country)
);
-- "A country's revenue over a time range".
CREATE INDEX revenue_by_minute_by_country ON revenue_by_minute (country, minute);
