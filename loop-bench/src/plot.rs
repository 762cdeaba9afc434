//! The SVG plot: one small panel per cell, one horizontal bar per
//! contender (the median), a whisker for the range over repetitions.
//!
//! Written by hand: a few rectangles, lines and text elements, with fonts
//! left to the viewer, so no font library or system dependency is built.

use std::fmt::Write as _;

use crate::report::{fmt_ns, fmt_rate};
use crate::run::{Row, Status};
use crate::stats::Summary;

const COLS: usize = 3;
const PANEL_W: f64 = 400.0;
const LABEL_W: f64 = 70.0;
const VALUE_W: f64 = 90.0;
const BAR_H: f64 = 14.0;
const BAR_GAP: f64 = 4.0;
const TITLE_H: f64 = 22.0;
const SECTION_H: f64 = 34.0;
const MARGIN: f64 = 16.0;

/// A fixed colour per well-known contender, so plots compare at a glance.
fn colour(contender: &str, index: usize) -> &'static str {
    match contender {
        "mio" => "#1f77b4",
        "polling" => "#2ca02c",
        "uring" => "#17becf",
        "tokio" => "#ff7f0e",
        "smol" => "#9467bd",
        _ => ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"][index % 4],
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Panel<'a> {
    title: String,
    bars: Vec<(&'a str, Option<Summary>, &'static str)>,
    fmt: fn(f64) -> String,
    /// A value to mark with a dashed line across the bars (1.00× = tokio).
    reference: Option<f64>,
}

struct Section<'a> {
    title: String,
    panels: Vec<Panel<'a>>,
}

/// Draws the plot for `rows` and `contenders` (in legend order).
pub fn svg(rows: &[Row], contenders: &[String], subtitle: &str) -> String {
    let mut sections: Vec<Section<'_>> = Vec::new();
    let cells = |echo: bool| -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in rows {
            if (r.workload == "echo") == echo && !v.contains(&r.cell.as_str()) {
                v.push(&r.cell);
            }
        }
        v
    };
    let panel = |cell: &str, pick: fn(&Row) -> Option<Summary>, fmt: fn(f64) -> String| Panel {
        title: cell.to_owned(),
        bars: contenders
            .iter()
            .map(|c| {
                let row = rows.iter().find(|r| r.cell == cell && &r.contender == c);
                let value = row.filter(|r| r.status == Status::Ok).and_then(pick);
                let note = match row.map(|r| r.status) {
                    Some(Status::Failed) => "failed",
                    Some(Status::Unavailable) => "n/a",
                    _ => "",
                };
                (c.as_str(), value, note)
            })
            .collect(),
        fmt,
        reference: None,
    };
    let sched = cells(false);
    if !sched.is_empty() {
        sections.push(Section {
            title: "Scheduling: operations per second (higher is better)".to_owned(),
            panels: sched
                .iter()
                .map(|c| panel(c, |r| r.rate, fmt_rate))
                .collect(),
        });
    }
    let echo = cells(true);
    if !echo.is_empty() {
        sections.push(Section {
            title: "TCP echo: requests per server-CPU-second (higher is better)".to_owned(),
            panels: echo
                .iter()
                .map(|c| panel(c, |r| r.ops_per_cpu_sec, fmt_rate))
                .collect(),
        });
        if contenders.iter().any(|c| c == "tokio") {
            sections.push(Section {
                title: "TCP echo: requests per server-CPU-second relative to tokio \
                        (per-repetition ratios; dashed line: tokio)"
                    .to_owned(),
                panels: echo
                    .iter()
                    .map(|cell| relative_panel(rows, contenders, cell))
                    .collect(),
            });
        }
        sections.push(Section {
            title: "TCP echo: requests per second (server and load generator on one core each)"
                .to_owned(),
            panels: echo
                .iter()
                .map(|c| panel(c, |r| r.rate, fmt_rate))
                .collect(),
        });
        sections.push(Section {
            title: "TCP echo: p99 round-trip latency (lower is better)".to_owned(),
            panels: echo
                .iter()
                .map(|c| panel(c, |r| r.p99_ns, fmt_ns))
                .collect(),
        });
    }

    let panel_h = TITLE_H + contenders.len() as f64 * (BAR_H + BAR_GAP) + 8.0;
    let width = MARGIN * 2.0 + COLS as f64 * PANEL_W;
    let header_h = 58.0;
    let height = header_h
        + sections
            .iter()
            .map(|s| SECTION_H + s.panels.len().div_ceil(COLS) as f64 * panel_h)
            .sum::<f64>()
        + MARGIN;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{MARGIN}" y="22" font-size="16" font-weight="bold">loop-bench: evloop backends vs tokio and smol</text><text x="{MARGIN}" y="40" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    // Legend.
    let mut lx = MARGIN;
    for (i, c) in contenders.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="46" width="10" height="10" fill="{}"/><text x="{}" y="55">{}</text>"#,
            colour(c, i),
            lx + 14.0,
            esc(c)
        );
        lx += 24.0 + 7.0 * c.len() as f64;
    }
    let mut y = header_h;
    for section in &sections {
        let _ = writeln!(
            out,
            r#"<text x="{MARGIN}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            y + 24.0,
            esc(&section.title)
        );
        y += SECTION_H;
        for (i, p) in section.panels.iter().enumerate() {
            let px = MARGIN + (i % COLS) as f64 * PANEL_W;
            let py = y + (i / COLS) as f64 * panel_h;
            draw_panel(&mut out, p, px, py, contenders);
        }
        y += section.panels.len().div_ceil(COLS) as f64 * panel_h;
    }
    out.push_str("</svg>\n");
    out
}

/// One cell's requests per server-CPU-second relative to tokio, for every
/// contender but tokio ([`crate::report::paired_cpu_ratios`]).
fn relative_panel<'a>(rows: &[Row], contenders: &'a [String], cell: &str) -> Panel<'a> {
    let find = |c: &str| rows.iter().find(|r| r.cell == cell && r.contender == c);
    let tokio = find("tokio");
    Panel {
        title: cell.to_owned(),
        bars: contenders
            .iter()
            .filter(|c| *c != "tokio")
            .map(|c| {
                let ratio = match (find(c), tokio) {
                    (Some(m), Some(t)) => crate::report::paired_cpu_ratios(m, t),
                    _ => None,
                };
                (c.as_str(), ratio, "")
            })
            .collect(),
        fmt: |x| format!("{x:.2}x"),
        reference: Some(1.0),
    }
}

fn draw_panel(out: &mut String, p: &Panel<'_>, x: f64, y: f64, contenders: &[String]) {
    let bar_w = PANEL_W - LABEL_W - VALUE_W - 10.0;
    let max = p
        .bars
        .iter()
        .filter_map(|(_, s, _)| s.map(|s| s.max.max(s.median)))
        .fold(p.reference.unwrap_or(0.0), f64::max);
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{}" font-weight="bold">{}</text>"#,
        y + 15.0,
        esc(&p.title)
    );
    for (i, (name, summary, note)) in p.bars.iter().enumerate() {
        let by = y + TITLE_H + i as f64 * (BAR_H + BAR_GAP);
        let idx = contenders.iter().position(|c| c == name).unwrap_or(i);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            x + LABEL_W - 6.0,
            by + BAR_H - 3.0,
            esc(name)
        );
        let Some(s) = summary else {
            let _ = writeln!(
                out,
                r##"<text x="{}" y="{}" fill="#999">{}</text>"##,
                x + LABEL_W,
                by + BAR_H - 3.0,
                if note.is_empty() { "-" } else { note }
            );
            continue;
        };
        let scale = |v: f64| if max > 0.0 { v / max * bar_w } else { 0.0 };
        let w = scale(s.median).max(1.0);
        let bx = x + LABEL_W;
        let _ = writeln!(
            out,
            r#"<rect x="{bx:.1}" y="{by:.1}" width="{w:.1}" height="{BAR_H}" fill="{}"/>"#,
            colour(name, idx)
        );
        let (lo, hi) = (bx + scale(s.min), bx + scale(s.max));
        let mid = by + BAR_H / 2.0;
        let _ = writeln!(
            out,
            r#"<path d="M{lo:.1} {mid:.1}H{hi:.1}M{lo:.1} {:.1}V{:.1}M{hi:.1} {:.1}V{:.1}" stroke="black" stroke-width="1" fill="none"/>"#,
            mid - 3.0,
            mid + 3.0,
            mid - 3.0,
            mid + 3.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}">{}</text>"#,
            bx + bar_w + 6.0,
            by + BAR_H - 3.0,
            esc(&(p.fmt)(s.median))
        );
    }
    if let Some(r) = p.reference.filter(|_| max > 0.0) {
        let rx = x + LABEL_W + r / max * bar_w;
        let _ = writeln!(
            out,
            r##"<path d="M{rx:.1} {:.1}V{:.1}" stroke="#333" stroke-width="1" stroke-dasharray="3,2"/>"##,
            y + TITLE_H - 3.0,
            y + TITLE_H + p.bars.len() as f64 * (BAR_H + BAR_GAP)
        );
    }
}
