//! The aggregate rows' cells, read in place (`Row::cells`), for the Native and RowBinary
//! encoders (`pyrows.rs`). Going through `Row::to_json` built a JSON list per row, with
//! a copy of each of its strings, only to encode and drop it: about 2% of the worker's
//! CPU at saturation (BENCHMARKS.md). These cells are the one statement of these rows'
//! column order: `Row::to_json`, which the differential tests compare with the Python
//! rows, is made from them, and `tests/native/test_row_binary.py` stores the encoded
//! rows through ClickHouse.

use crate::row_binary::Cell;
use crate::rows_aggregate::Row;
use crate::state::Dims;

fn head<'a>(
    funnel: &'a str,
    window_start: i64,
    dims: &'a Dims,
    breakdown: &'a [String],
) -> Vec<Cell<'a>> {
    let mut out = Vec::with_capacity(24);
    out.push(Cell::Str(funnel));
    out.push(Cell::Int(window_start));
    out.extend(dims.iter().map(|d| Cell::Str(d)));
    out.push(Cell::Strs(breakdown));
    out
}

fn ints<'a>(out: &mut Vec<Cell<'a>>, values: &[i64]) {
    out.extend(values.iter().map(|v| Cell::Int(*v)));
}

impl Row {
    /// The row's cells in its table's column order, borrowed from the row. `None` for
    /// the retention and order-gap rows: they are few, and their dates are text only
    /// in their JSON.
    pub fn cells(&self) -> Option<Vec<Cell<'_>>> {
        let cells = match self {
            Row::FunnelStep(r) => {
                let mut out = head(&r.funnel, r.window_start, &r.dims, &r.breakdown);
                out.push(Cell::Int(r.step));
                out.push(Cell::Str(&r.step_name));
                ints(&mut out, &[r.partition, r.entered, r.is_final, r.version]);
                out
            }
            Row::FunnelOutcome(r) => {
                let mut out = head(&r.funnel, r.window_start, &r.dims, &r.breakdown);
                out.push(Cell::Str(r.outcome));
                ints(&mut out, &[r.partition, r.entities, r.is_final, r.version]);
                out
            }
            Row::FunnelTtc(r) => {
                let mut out = head(&r.funnel, r.window_start, &r.dims, &r.breakdown);
                out.push(Cell::Str(r.le_seconds.python_repr()));
                ints(&mut out, &[r.partition, r.converted, r.is_final, r.version]);
                out
            }
            Row::FunnelAttempt(r) => {
                let mut out = head(&r.funnel, r.window_start, &r.dims, &r.breakdown);
                out.push(Cell::Str(&r.anonymous_id));
                out.push(Cell::Str(&r.entity));
                out.push(Cell::Str(&r.start_event_id));
                out.push(Cell::Str(r.outcome));
                out.push(Cell::Int(r.level));
                out.push(Cell::Ints(&r.step_times));
                ints(&mut out, &[r.partition, r.attempts, r.is_final, r.version]);
                out
            }
            Row::Kpi(r) => {
                let mut out = Vec::with_capacity(21);
                out.push(Cell::Int(r.window_start));
                out.extend(r.dims.iter().map(|d| Cell::Str(d)));
                out.push(Cell::Str(&r.currency));
                out.push(Cell::Int(r.partition));
                ints(&mut out, &r.metrics);
                ints(&mut out, &[r.is_final, r.version]);
                out
            }
            Row::OrderAttribution(r) => {
                let mut out = vec![
                    Cell::Int(r.window_start),
                    Cell::Str(&r.anonymous_id),
                    Cell::Str(&r.transaction_id),
                    Cell::Str(r.model),
                    Cell::Str(&r.channel),
                    Cell::Str(&r.source),
                    Cell::Str(&r.medium),
                    Cell::Str(&r.campaign),
                    Cell::Str(&r.kol),
                    Cell::Int(r.order_time),
                    Cell::Str(&r.currency),
                    Cell::Int(r.value_minor),
                    Cell::Int(r.is_first),
                ];
                ints(
                    &mut out,
                    &[r.partition, r.share_micro, r.is_final, r.version],
                );
                out
            }
            Row::Retention(_) | Row::OrderGap(_) => return None,
        };
        Some(cells)
    }
}
