//! The report's charts, written as inline SVG: the step DAG, the timeline (Gantt), and
//! duration histograms. No scripts, no external resources; tooltips are SVG `<title>`s.

use super::data::{Bar, DurationStats, StepReport, Timeline};
use super::html::esc;
use std::fmt::Write;

/// Colour of a task or attempt state.
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "succeeded" => "#2e9e5b",
        "failed" => "#d64541",
        "running" => "#3b7dd8",
        "blocked" => "#e7a33e",
        "cancelled" => "#8a8f98",
        "lost" => "#b38bd6",
        _ => "#c9ced6",
    }
}

/// States in the order the stacked bars show them.
pub const STATE_ORDER: &[&str] = &[
    "succeeded",
    "running",
    "failed",
    "blocked",
    "cancelled",
    "pending",
];

/// Seconds as a short human duration (`850ms`, `42s`, `3m05s`, `2h10m`, `3d04h`).
pub fn human_duration(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    if s < 1.0 {
        return format!("{:.0}ms", s * 1000.0);
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    if t < 3600 {
        return format!("{}m{:02}s", t / 60, t % 60);
    }
    if t < 86400 {
        return format!("{}h{:02}m", t / 3600, (t % 3600) / 60);
    }
    format!("{}d{:02}h", t / 86400, (t % 86400) / 3600)
}

/// The DAG: one box per step in columns by depth, edges from each need, a stacked bar of
/// task counts by state in each box.
pub fn dag(steps: &[StepReport]) -> String {
    let index: std::collections::HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // Steps come in topological order: depth is one more than the deepest need.
    let mut depth = vec![0usize; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        depth[i] = s
            .needs
            .iter()
            .filter_map(|n| index.get(n.as_str()))
            .map(|&u| depth[u] + 1)
            .max()
            .unwrap_or(0);
    }
    let columns = depth.iter().max().map_or(1, |d| d + 1);
    let mut row_of = vec![0usize; steps.len()];
    let mut rows_in = vec![0usize; columns];
    for i in 0..steps.len() {
        row_of[i] = rows_in[depth[i]];
        rows_in[depth[i]] += 1;
    }
    let (w, h, gap_x, gap_y, pad) = (200.0, 70.0, 70.0, 22.0, 12.0);
    let rows = rows_in.iter().copied().max().unwrap_or(1);
    let width = pad * 2.0 + columns as f64 * w + (columns.saturating_sub(1)) as f64 * gap_x;
    let height = pad * 2.0 + rows as f64 * h + (rows.saturating_sub(1)) as f64 * gap_y;
    let pos = |i: usize| {
        (
            pad + depth[i] as f64 * (w + gap_x),
            pad + row_of[i] as f64 * (h + gap_y),
        )
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="step graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7a808a"/></marker></defs>"##
    );
    for (i, s) in steps.iter().enumerate() {
        for n in &s.needs {
            let Some(&u) = index.get(n.as_str()) else {
                continue;
            };
            let (ux, uy) = pos(u);
            let (vx, vy) = pos(i);
            let (x1, y1, x2, y2) = (ux + w, uy + h / 2.0, vx, vy + h / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                out,
                r##"<path class="edge" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {:.1},{y2:.1}" fill="none" stroke="#7a808a" stroke-width="1.4" marker-end="url(#arrow)"/>"##,
                x2 - 2.0
            );
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let (x, y) = pos(i);
        let done = s.counts.get("succeeded").copied().unwrap_or(0);
        let border = if s.counts.get("failed").copied().unwrap_or(0) > 0 {
            "#d64541"
        } else if s.counts.get("blocked").copied().unwrap_or(0) > 0 {
            "#e7a33e"
        } else if done == s.total && s.total > 0 {
            "#2e9e5b"
        } else {
            "#9aa1ab"
        };
        let tip: Vec<String> = STATE_ORDER
            .iter()
            .map(|st| format!("{} {st}", s.counts.get(*st).copied().unwrap_or(0)))
            .collect();
        let _ = write!(
            out,
            r##"<g class="dag-node" data-step="{name}" transform="translate({x:.1},{y:.1})"><title>{name} ({kind}): {tip}</title><rect width="{w}" height="{h}" rx="7" fill="#ffffff" stroke="{border}" stroke-width="2"/><text x="10" y="20" class="node-name">{name}</text><text x="10" y="36" class="node-kind">{kind} · {done}/{total}</text>"##,
            name = esc(&s.name),
            kind = esc(&s.kind),
            tip = esc(&tip.join(", ")),
            total = s.total,
        );
        let (bx, by, bw, bh) = (10.0, 46.0, w - 20.0, 12.0);
        let mut cursor = bx;
        let _ = write!(
            out,
            r##"<rect x="{bx}" y="{by}" width="{bw}" height="{bh}" fill="#eef0f3"/>"##
        );
        for st in STATE_ORDER {
            let n = s.counts.get(*st).copied().unwrap_or(0);
            if n == 0 || s.total == 0 {
                continue;
            }
            let part = bw * n as f64 / s.total as f64;
            let _ = write!(
                out,
                r##"<rect x="{cursor:.2}" y="{by}" width="{part:.2}" height="{bh}" fill="{}"><title>{n} {st}</title></rect>"##,
                state_colour(st)
            );
            cursor += part;
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

fn axis(out: &mut String, x0: f64, width: f64, y: f64, t0: f64, t1: f64) {
    let span = t1 - t0;
    let _ = write!(
        out,
        r##"<line x1="{x0}" y1="{y}" x2="{:.1}" y2="{y}" stroke="#7a808a"/>"##,
        x0 + width
    );
    for k in 0..=6 {
        let f = k as f64 / 6.0;
        let x = x0 + f * width;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{:.1}" stroke="#7a808a"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">+{}</text>"##,
            y + 4.0,
            y + 16.0,
            esc(&human_duration(f * span))
        );
    }
}

/// The timeline: each attempt as a bar (queue wait pale, run coloured by state) in lanes
/// per step, or, above [`super::data::MAX_TIMELINE_BARS`] attempts, mean concurrency per
/// time bin and step.
pub fn timeline(tl: &Timeline, steps: &[StepReport]) -> String {
    let (label_w, plot_w, pad) = (150.0, 900.0, 8.0);
    let mut out = String::new();
    match tl {
        Timeline::Empty => {
            out.push_str(r#"<p class="muted">No attempt has started yet.</p>"#);
        }
        Timeline::Bars {
            t0,
            t1,
            lanes,
            bars,
        } => {
            let lane_h: Vec<f64> = lanes
                .iter()
                .map(|&n| {
                    if n == 0 {
                        0.0
                    } else {
                        (160.0 / n as f64).clamp(2.0, 12.0)
                    }
                })
                .collect();
            let mut top = Vec::with_capacity(steps.len());
            let mut y = pad;
            for (i, _) in steps.iter().enumerate() {
                top.push(y);
                y += (lanes[i] as f64 * lane_h[i]).max(14.0) + 8.0;
            }
            let height = y + 24.0;
            let width = label_w + plot_w + 2.0 * pad;
            let _ = write!(
                out,
                r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="timeline of attempts">"##
            );
            let scale = plot_w / (t1 - t0);
            for (i, s) in steps.iter().enumerate() {
                let _ = write!(
                    out,
                    r##"<text x="{pad}" y="{:.1}" class="lane-label">{}</text><line x1="{label_w}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eef0f3"/>"##,
                    top[i] + 11.0,
                    esc(&s.name),
                    top[i] - 4.0,
                    label_w + plot_w,
                    top[i] - 4.0
                );
            }
            for Bar {
                step,
                lane,
                submitted,
                started,
                ended,
                state,
                label,
            } in bars
            {
                let y = top[*step] + *lane as f64 * lane_h[*step];
                let h = (lane_h[*step] - 1.0).max(1.0);
                let xs = label_w + (submitted - t0) * scale;
                let xr = label_w + (started - t0) * scale;
                let xe = label_w + (ended - t0) * scale;
                let tip = format!(
                    "{label}: {state}, queued {}, ran {}",
                    human_duration(started - submitted),
                    human_duration(ended - started)
                );
                let _ = write!(out, r##"<g><title>{}</title>"##, esc(&tip));
                if xr - xs > 0.3 {
                    let _ = write!(
                        out,
                        r##"<rect x="{xs:.2}" y="{y:.2}" width="{:.2}" height="{h:.2}" fill="#dfe3e8"/>"##,
                        xr - xs
                    );
                }
                let _ = write!(
                    out,
                    r##"<rect x="{xr:.2}" y="{y:.2}" width="{:.2}" height="{h:.2}" fill="{}"/></g>"##,
                    (xe - xr).max(0.8),
                    state_colour(state)
                );
            }
            axis(&mut out, label_w, plot_w, height - 22.0, *t0, *t1);
            out.push_str("</svg>");
        }
        Timeline::Binned {
            t0,
            t1,
            running,
            failed,
        } => {
            let row_h = 46.0;
            let height = pad + steps.len() as f64 * (row_h + 8.0) + 24.0;
            let width = label_w + plot_w + 2.0 * pad;
            let _ = write!(
                out,
                r##"<svg class="timeline binned" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="running attempts over time">"##
            );
            let bins = running.first().map_or(1, Vec::len).max(1);
            let bw = plot_w / bins as f64;
            let bin_s = (t1 - t0) / bins as f64;
            for (i, s) in steps.iter().enumerate() {
                let y0 = pad + i as f64 * (row_h + 8.0);
                let peak = running[i].iter().copied().fold(0.0, f64::max);
                let _ = write!(
                    out,
                    r##"<text x="{pad}" y="{:.1}" class="lane-label">{}</text><text x="{pad}" y="{:.1}" class="tick">peak {peak:.0} running</text>"##,
                    y0 + 14.0,
                    esc(&s.name),
                    y0 + 28.0
                );
                let mut path = format!("M{label_w:.1},{:.1}", y0 + row_h);
                for (b, v) in running[i].iter().enumerate() {
                    let x = label_w + b as f64 * bw;
                    let yv = y0 + row_h - if peak > 0.0 { v / peak * row_h } else { 0.0 };
                    let _ = write!(path, " L{x:.1},{yv:.1} L{:.1},{yv:.1}", x + bw);
                }
                let _ = write!(path, " L{:.1},{:.1} Z", label_w + plot_w, y0 + row_h);
                let _ = write!(
                    out,
                    r##"<path d="{path}" fill="#3b7dd8" fill-opacity="0.55" stroke="#3b7dd8" stroke-width="0.8"><title>{} attempts running over time (mean per {} bin)</title></path>"##,
                    esc(&s.name),
                    esc(&human_duration(bin_s))
                );
                for (b, &n) in failed[i].iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let x = label_w + b as f64 * bw;
                    let _ = write!(
                        out,
                        r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="4" fill="#d64541"><title>{n} failed attempt(s) ended here</title></rect>"##,
                        y0 + row_h,
                        bw.max(1.0)
                    );
                }
            }
            axis(&mut out, label_w, plot_w, height - 22.0, *t0, *t1);
            out.push_str("</svg>");
        }
    }
    out
}

/// A small histogram of durations: succeeded (green) and failed (red) stacked per bin.
pub fn duration_histogram(d: &DurationStats) -> String {
    let (w, h, pad_b) = (360.0, 90.0, 16.0);
    let peak = d.bins.iter().map(|(a, b)| a + b).max().unwrap_or(0).max(1) as f64;
    let bw = w / d.bins.len().max(1) as f64;
    let mut out = format!(
        r##"<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{:.0}" viewBox="0 0 {w} {:.0}" role="img" aria-label="duration histogram">"##,
        h + pad_b,
        h + pad_b
    );
    for (b, (ok, bad)) in d.bins.iter().enumerate() {
        let x = b as f64 * bw;
        let lo = d.max * b as f64 / d.bins.len() as f64;
        let hi = d.max * (b + 1) as f64 / d.bins.len() as f64;
        let h_ok = *ok as f64 / peak * h;
        let h_bad = *bad as f64 / peak * h;
        let tip = format!(
            "{}–{}: {ok} succeeded, {bad} failed",
            human_duration(lo),
            human_duration(hi)
        );
        let _ = write!(
            out,
            r##"<g><title>{}</title><rect x="{x:.1}" y="0" width="{bw:.1}" height="{h}" fill="transparent"/><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h_ok:.1}" fill="#2e9e5b"/><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h_bad:.1}" fill="#d64541"/></g>"##,
            esc(&tip),
            h - h_ok,
            (bw - 1.0).max(0.5),
            h - h_ok - h_bad,
            (bw - 1.0).max(0.5)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#7a808a"/><text x="0" y="{:.0}" class="tick">0</text><text x="{w}" y="{:.0}" class="tick" text-anchor="end">{}</text></svg>"##,
        h + 13.0,
        h + 13.0,
        esc(&human_duration(d.max))
    );
    out
}
