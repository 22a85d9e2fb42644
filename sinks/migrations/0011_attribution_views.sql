-- Attribution, marketing cost and ROI (issue #15, docs/semantics.md section 10): the read
-- side of order_attribution (0009), with the counted refunds of events_raw (section 4:
-- event_type refund, is_late = 0, one row per (anonymous_id, event_id) under FINAL, the
-- set the KPI refunds and refunded_minor count) and the imported costs (v_marketing_costs,
-- 0010: the latest import of each day). Read by reports/attribution.py, the worker's
-- attribution monitor and the Grafana row "Attribution and ROI".
--
-- Amounts in *_micro columns are exact: millionths of an order (orders_micro, sum of
-- share_micro) or millionths of a minor unit (revenue_micro = value_minor x share_micro),
-- so that summing them loses nothing; the Float64 columns beside them are for reading.
--
-- v_attribution_daily: one row per UTC day, model, channel, campaign, kol and currency.
--   Orders, first orders and revenue count on the day of the order (order_time); a refund
--   on the day of the refund, in the refund's currency, split by the shares of its
--   transaction's order (joined by anonymous_id and transaction_id, model by model); a
--   refund of an order that is not known (or without a transaction_id) goes to channel
--   '(unattributed)', campaign and kol '', share 1,000,000, under every model.
--   cost_minor is the day's cost of (channel, campaign, currency), summed over utm_source
--   and utm_medium; has_cost = 1 when the latest import of the day has a row for it. Costs
--   have no KOL: a campaign's cost is on each of its KOL rows (do not sum cost_minor over
--   kol; take it once per day, model, channel, campaign and currency), and on a row of its
--   own (kol '') when nothing was attributed to the campaign in that currency that day,
--   so a channel that spent and sold nothing shows roas 0. roas = net revenue / cost,
--   cpa_minor = cost / attributed orders, cac_minor = cost / new customers: only over a
--   cost of the row's own currency, NULL without one or when the divisor is 0.
CREATE VIEW IF NOT EXISTS v_attribution_daily AS
WITH
    credited AS
    (
        SELECT order_time, anonymous_id, transaction_id, currency, value_minor, is_first,
               model, channel, campaign, kol, share_micro
        FROM order_attribution FINAL
        WHERE share_micro > 0
    ),
    refunds AS
    (
        SELECT anonymous_id, transaction_id, toDate(event_time) AS day,
               CAST(currency AS String) AS currency, ifNull(value_minor, 0) AS value_minor
        FROM events_raw FINAL
        WHERE event_type = 'refund' AND is_late = 0
    ),
    models AS
    (
        SELECT arrayJoin(['first_touch', 'last_touch', 'last_non_direct', 'linear',
                          'position_based', 'time_decay']) AS model
    ),
    parts AS
    (
        SELECT toDate(order_time) AS day, CAST(model AS String) AS model,
               CAST(channel AS String) AS channel, campaign, kol,
               CAST(currency AS String) AS currency,
               toUInt64(share_micro) AS orders_micro,
               toInt128(value_minor) * toInt128(share_micro) AS revenue_micro,
               toInt128(0) AS refunded_micro,
               toUInt64(if(is_first = 1, share_micro, 0)) AS first_orders_micro,
               toInt64(0) AS own_cost_minor, toUInt8(0) AS own_cost, toUInt8(1) AS sold
        FROM credited
        UNION ALL
        SELECT r.day, CAST(c.model AS String), CAST(c.channel AS String), c.campaign, c.kol,
               r.currency, toUInt64(0), toInt128(0),
               toInt128(r.value_minor) * toInt128(c.share_micro), toUInt64(0),
               toInt64(0), toUInt8(0), toUInt8(1)
        FROM refunds AS r
        INNER JOIN credited AS c
            ON r.anonymous_id = c.anonymous_id AND r.transaction_id = c.transaction_id
        WHERE r.transaction_id != ''
        UNION ALL
        SELECT r.day, m.model, '(unattributed)', '', '', r.currency, toUInt64(0), toInt128(0),
               toInt128(r.value_minor) * toInt128(1000000), toUInt64(0),
               toInt64(0), toUInt8(0), toUInt8(1)
        FROM refunds AS r
        CROSS JOIN models AS m
        WHERE r.transaction_id = ''
           OR (r.anonymous_id, r.transaction_id) NOT IN
              (SELECT anonymous_id, transaction_id FROM credited)
        UNION ALL
        SELECT k.day, m.model, k.channel, k.campaign, '', k.currency, toUInt64(0), toInt128(0),
               toInt128(0), toUInt64(0), k.cost_minor, toUInt8(1), toUInt8(0)
        FROM
        (
            SELECT day, CAST(channel AS String) AS channel, CAST(campaign AS String) AS campaign,
                   CAST(currency AS String) AS currency, toInt64(sum(cost_minor)) AS cost_minor
            FROM v_marketing_costs
            GROUP BY day, channel, campaign, currency
        ) AS k
        CROSS JOIN models AS m
    ),
    cells AS
    (
        SELECT day, model, channel, campaign, kol, currency,
               sum(orders_micro) AS orders_micro, sum(revenue_micro) AS revenue_micro,
               sum(refunded_micro) AS refunded_micro,
               sum(first_orders_micro) AS first_orders_micro,
               sum(own_cost_minor) AS own_cost_minor, max(own_cost) AS own_cost,
               max(sold) AS sold
        FROM parts
        GROUP BY day, model, channel, campaign, kol, currency
    ),
    spread AS
    (
        SELECT day, model, channel, campaign, kol, currency, orders_micro, revenue_micro,
               refunded_micro, first_orders_micro, sold,
               sum(own_cost_minor) OVER campaign_day AS cost_minor,
               max(own_cost) OVER campaign_day AS has_cost,
               max(sold) OVER campaign_day AS campaign_sold
        FROM cells
        WINDOW campaign_day AS (PARTITION BY day, model, channel, campaign, currency)
    )
SELECT day, model, channel, campaign, kol, currency,
       orders_micro,
       orders_micro / 1000000 AS attributed_orders,
       revenue_micro,
       revenue_micro / 1000000 AS revenue_minor,
       refunded_micro,
       refunded_micro / 1000000 AS refunded_minor,
       revenue_micro - refunded_micro AS net_revenue_micro,
       (revenue_micro - refunded_micro) / 1000000 AS net_revenue_minor,
       first_orders_micro,
       first_orders_micro / 1000000 AS new_customers,
       cost_minor,
       has_cost,
       if(has_cost = 1 AND cost_minor != 0,
          (revenue_micro - refunded_micro) / 1000000 / cost_minor, NULL) AS roas,
       if(has_cost = 1 AND orders_micro > 0,
          cost_minor * 1000000 / orders_micro, NULL) AS cpa_minor,
       if(has_cost = 1 AND first_orders_micro > 0,
          cost_minor * 1000000 / first_orders_micro, NULL) AS cac_minor
FROM spread
WHERE sold = 1 OR campaign_sold = 0;

-- v_acquisition_ltv: customers by acquisition, per cohort day (UTC day of the customer's
-- first order, is_first = 1), model, channel, campaign, kol and currency (the first
-- order's). customers_micro = the first order's shares; revenue_dN_micro = share x the
-- value of the customer's orders in that currency with first_time <= order_time <=
-- first_time + N days (both inclusive, the first order included), for N = 7 and 30. All of
-- a customer's orders are in order_attribution, so it needs nothing else. A cohort
-- younger than N days has not had its N days yet: its dN revenue is still growing.
-- ltv_dN_minor = revenue per customer in minor units.
CREATE VIEW IF NOT EXISTS v_acquisition_ltv AS
WITH
    credited AS
    (
        SELECT order_time, anonymous_id, transaction_id, currency, value_minor, is_first,
               model, channel, campaign, kol, share_micro
        FROM order_attribution FINAL
        WHERE share_micro > 0
    ),
    orders AS
    (
        SELECT anonymous_id, transaction_id, any(order_time) AS order_time,
               any(currency) AS currency, any(value_minor) AS value_minor
        FROM credited
        GROUP BY anonymous_id, transaction_id
    ),
    firsts AS
    (
        SELECT anonymous_id, transaction_id, order_time AS first_time,
               CAST(currency AS String) AS currency, CAST(model AS String) AS model,
               CAST(channel AS String) AS channel, campaign, kol,
               sum(share_micro) AS share_micro
        FROM credited
        WHERE is_first = 1
        GROUP BY anonymous_id, transaction_id, first_time, currency, model, channel,
                 campaign, kol
    ),
    customer_revenue AS
    (
        SELECT anonymous_id, transaction_id,
               sumIf(value_minor, gap_ms <= 7 * 86400000) AS revenue_d7,
               sumIf(value_minor, gap_ms <= 30 * 86400000) AS revenue_d30
        FROM
        (
            SELECT f.anonymous_id AS anonymous_id, f.transaction_id AS transaction_id,
                   toInt128(o.value_minor) AS value_minor,
                   toUnixTimestamp64Milli(o.order_time)
                   - toUnixTimestamp64Milli(f.first_time) AS gap_ms
            FROM
            (
                SELECT DISTINCT anonymous_id, transaction_id, first_time, currency FROM firsts
            ) AS f
            INNER JOIN orders AS o
                ON o.anonymous_id = f.anonymous_id AND o.currency = f.currency
        )
        WHERE gap_ms >= 0 AND gap_ms <= 30 * 86400000
        GROUP BY anonymous_id, transaction_id
    )
SELECT toDate(f.first_time) AS cohort_day, f.model AS model, f.channel AS channel,
       f.campaign AS campaign, f.kol AS kol, f.currency AS currency,
       sum(f.share_micro) AS customers_micro,
       customers_micro / 1000000 AS customers,
       sum(r.revenue_d7 * toInt128(f.share_micro)) AS revenue_d7_micro,
       sum(r.revenue_d30 * toInt128(f.share_micro)) AS revenue_d30_micro,
       revenue_d7_micro / 1000000 AS revenue_d7_minor,
       revenue_d30_micro / 1000000 AS revenue_d30_minor,
       revenue_d7_micro / customers_micro AS ltv_d7_minor,
       revenue_d30_micro / customers_micro AS ltv_d30_minor
FROM firsts AS f
INNER JOIN customer_revenue AS r
    ON r.anonymous_id = f.anonymous_id AND r.transaction_id = f.transaction_id
GROUP BY cohort_day, model, channel, campaign, kol, currency;
