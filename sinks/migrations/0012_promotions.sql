-- Item-level promotions (docs/semantics.md sections 4 and 10a): each item's coupon code
-- ('' when none) and per-unit discount, index-aligned with item_ids. KPI coupon_orders
-- and discount_minor count them; `funnel report promotions` reads them here. Rows
-- written before this migration read as [] (no item coupon, no item discount).
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_coupons Array(String) DEFAULT [];
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_discounts_minor Array(Int64) DEFAULT [];
