-- Readers' views: newest version per partition (FINAL), summed over partitions.

CREATE VIEW IF NOT EXISTS v_funnel_steps_minute AS
SELECT funnel, window_start, channel, campaign, device, platform, country, step,
       any(step_name) AS step_name, sum(entered) AS entered
FROM funnel_steps_minute FINAL
GROUP BY funnel, window_start, channel, campaign, device, platform, country, step;

CREATE VIEW IF NOT EXISTS v_funnel_steps_hour AS
SELECT funnel, toStartOfHour(window_start) AS hour, channel, campaign, device, platform,
       country, step, any(step_name) AS step_name, sum(entered) AS entered
FROM funnel_steps_minute FINAL
GROUP BY funnel, hour, channel, campaign, device, platform, country, step;

CREATE VIEW IF NOT EXISTS v_funnel_steps_day AS
SELECT funnel, toDate(window_start) AS day, channel, campaign, device, platform, country,
       step, any(step_name) AS step_name, sum(entered) AS entered
FROM funnel_steps_minute FINAL
GROUP BY funnel, day, channel, campaign, device, platform, country, step;

-- "Funnel now": the last hour of event time, per funnel and step, with step conversion.
CREATE VIEW IF NOT EXISTS v_funnel_now AS
WITH per_step AS
(
    SELECT funnel, step, any(step_name) AS step_name, sum(entered) AS entered
    FROM funnel_steps_minute FINAL
    WHERE window_start >= (SELECT max(window_start) FROM funnel_steps_minute) - INTERVAL 1 HOUR
    GROUP BY funnel, step
)
SELECT funnel, step, step_name, entered,
       entered / nullIf(first_value(entered) OVER w_prev, 0) AS conversion_from_previous,
       entered / nullIf(first_value(entered) OVER w_all, 0) AS conversion_from_first
FROM per_step
WINDOW w_prev AS (PARTITION BY funnel ORDER BY step ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),
       w_all AS (PARTITION BY funnel ORDER BY step ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY funnel, step;

CREATE VIEW IF NOT EXISTS v_kpi_minute AS
SELECT window_start, channel, campaign, device, platform, country, currency,
       sum(orders) AS orders, sum(gmv_minor) AS gmv_minor, sum(items) AS items,
       sum(coupon_orders) AS coupon_orders, sum(discount_minor) AS discount_minor,
       sum(first_orders) AS first_orders, sum(repeat_orders) AS repeat_orders,
       sum(refunds) AS refunds, sum(refunded_minor) AS refunded_minor,
       sum(payment_failures) AS payment_failures, sum(cancellations) AS cancellations,
       gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute FINAL
GROUP BY window_start, channel, campaign, device, platform, country, currency;

CREATE VIEW IF NOT EXISTS v_kpi_hour AS
SELECT toStartOfHour(window_start) AS hour, channel, currency,
       sum(orders) AS orders, sum(gmv_minor) AS gmv_minor,
       sum(refunds) AS refunds, sum(refunded_minor) AS refunded_minor,
       sum(coupon_orders) AS coupon_orders, sum(discount_minor) AS discount_minor,
       sum(first_orders) AS first_orders, sum(repeat_orders) AS repeat_orders,
       sum(payment_failures) AS payment_failures,
       gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute FINAL
GROUP BY hour, channel, currency;

CREATE VIEW IF NOT EXISTS v_kpi_day AS
SELECT toDate(window_start) AS day, channel, currency,
       sum(orders) AS orders, sum(gmv_minor) AS gmv_minor,
       sum(refunds) AS refunds, sum(refunded_minor) AS refunded_minor,
       sum(coupon_orders) AS coupon_orders, sum(discount_minor) AS discount_minor,
       sum(first_orders) AS first_orders, sum(repeat_orders) AS repeat_orders,
       sum(payment_failures) AS payment_failures,
       gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute FINAL
GROUP BY day, channel, currency;
