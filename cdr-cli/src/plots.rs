//! The report plots, drawn as SVG strings with plotters. SVG keeps them small, diffable and
//! free of font files: labels are `<text>` elements the viewer lays out.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 720;
const FONT: &str = "sans-serif";
const CHOSEN: RGBColor = RGBColor(46, 125, 50);
const REJECTED: RGBColor = RGBColor(198, 40, 40);
const BAR: RGBColor = RGBColor(33, 102, 172);
const GREY: RGBColor = RGBColor(200, 200, 200);

/// Draws on a fresh SVG canvas and returns the document.
fn svg(
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// `n` categories on an axis (plotters' integer ranges include their end).
fn segments(
    n: usize,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize> {
    (0..n.max(1) - 1).into_segmented()
}

/// Roughly how many pixels a label takes (the SVG viewer, not plotters, sets the text).
fn label_width(labels: &[String]) -> u32 {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    (longest as u32 * 7 + 16).clamp(60, 320)
}

/// One horizontal bar per group: accuracy in percent, labelled with the row count.
pub fn accuracy_bars(title: &str, groups: &[(String, f64, usize)]) -> anyhow::Result<String> {
    let n = groups.len().max(1);
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    svg((WIDTH, 90 + 28 * n as u32), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(label_width(&labels))
            .build_cartesian_2d(0f64..100f64, segments(n))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .disable_y_mesh()
            .x_desc("accuracy (%)")
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_labels(n)
            .draw()?;
        chart.draw_series(groups.iter().enumerate().map(|(i, (_, acc, _))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (100.0 * acc, SegmentValue::Exact(i + 1)),
                ],
                BAR.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))?;
        chart.draw_series(groups.iter().enumerate().map(|(i, (_, acc, rows))| {
            Text::new(
                format!("{:.1}% of {rows}", 100.0 * acc),
                ((100.0 * acc).min(78.0) + 1.0, SegmentValue::CenterOf(i)),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
        // 50% is what a coin flip gets on pairwise data.
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (50.0, SegmentValue::Exact(0)),
                (50.0, SegmentValue::Exact(n)),
            ],
            BLACK.stroke_width(1),
        )))?;
        Ok(())
    })
}

/// A histogram of reward margins (chosen − rejected): right of zero is a correct decision.
pub fn margin_histogram(title: &str, margins: &[f64]) -> anyhow::Result<String> {
    let (lo, hi) = margins
        .iter()
        .fold((0f64, 0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    let target = (margins.len() as f64).sqrt().ceil().clamp(6.0, 40.0);
    // Bin edges on multiples of the width, so zero is an edge and no bin mixes right and wrong.
    let bin_width = ((hi - lo) / target).max(1e-6);
    let lo = (lo / bin_width).floor() * bin_width;
    let bins = (((hi - lo) / bin_width).floor() as usize + 1).max(1);
    let hi = lo + bins as f64 * bin_width;
    let mut counts = vec![0usize; bins];
    for &m in margins {
        // Bins are (left, right]: a tie (margin 0, a wrong decision) lands left of zero.
        let b = (((m - lo) / bin_width).ceil() as usize).saturating_sub(1);
        counts[b.min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1) as u32 + 1;
    svg((WIDTH, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0u32..top)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("reward margin r(chosen) − r(rejected)")
            .y_desc("rows")
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(b, &c)| {
            let x0 = lo + b as f64 * bin_width;
            let x1 = x0 + bin_width;
            let color = if (x0 + x1) / 2.0 > 0.0 {
                CHOSEN
            } else {
                REJECTED
            };
            let mut bar = Rectangle::new([(x0, 0), (x1, c as u32)], color.mix(0.8).filled());
            bar.set_margin(0, 0, 1, 1);
            bar
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0), (0.0, top)],
            BLACK.stroke_width(1),
        )))?;
        Ok(())
    })
}

/// Least-squares slope and Pearson correlation of `y` on `x`.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx, sxy / (sxx * syy).sqrt()))
}

/// Reward against response length, chosen and rejected responses apart, with the least-squares
/// line over all of them: a rising line is a length bias.
pub fn reward_vs_length(
    title: &str,
    chosen: &[(f64, f64)],
    rejected: &[(f64, f64)],
) -> anyhow::Result<String> {
    let all: Vec<(f64, f64)> = chosen.iter().chain(rejected).copied().collect();
    let (x_hi, y_lo, y_hi) = all
        .iter()
        .fold((1f64, 0f64, 0f64), |(xh, yl, yh), &(x, y)| {
            (xh.max(x), yl.min(y), yh.max(y))
        });
    let pad = 0.05 * (y_hi - y_lo).max(1e-6);
    let (y_lo, y_hi, x_hi) = (y_lo - pad, y_hi + pad, x_hi * 1.05);
    svg((WIDTH, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_hi, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("response tokens")
            .y_desc("reward")
            .draw()?;
        for (points, color, label) in [(chosen, CHOSEN, "chosen"), (rejected, REJECTED, "rejected")]
        {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 4, color.mix(0.75).filled())),
                )?
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
        }
        if let Some((slope, intercept, r)) = fit(&all) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, intercept), (x_hi, intercept + slope * x_hi)],
                    BLACK.stroke_width(1),
                )))?
                .label(format!("least squares (r = {r:.2})"))
                .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// Red (0%) through white (50%) to green (100%).
fn accuracy_color(acc: f64) -> RGBColor {
    let lerp = |a: u8, b: u8, t: f64| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    let (from, to, t) = if acc < 0.5 {
        (REJECTED, WHITE, acc / 0.5)
    } else {
        (WHITE, CHOSEN, (acc - 0.5) / 0.5)
    };
    RGBColor(
        lerp(from.0, to.0, t),
        lerp(from.1, to.1, t),
        lerp(from.2, to.2, t),
    )
}

/// Accuracy of every strong (row) × weak (column) pair; `None` for the diagonal and skipped pairs.
pub fn pair_heat_map(
    title: &str,
    names: &[String],
    cells: &[Vec<Option<f64>>],
) -> anyhow::Result<String> {
    let n = names.len().max(1);
    let side = label_width(names);
    // Columns as wide as the longest name, so the weak models' labels need no rotation.
    let column = side.max(64);
    let size = (side + 40 + column * n as u32, 130 + 44 * n as u32);
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(side)
            .build_cartesian_2d(segments(n), segments(n))?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| label(&flip(v, n)))
            .x_desc("weak")
            .y_desc("strong")
            .draw()?;
        // Row 0 (the first strong model) at the top, as a table reads.
        let cell = |s: usize, w: usize| {
            [
                (SegmentValue::Exact(w), SegmentValue::Exact(n - 1 - s)),
                (SegmentValue::Exact(w + 1), SegmentValue::Exact(n - s)),
            ]
        };
        chart.draw_series((0..n).flat_map(|s| {
            (0..n).map(move |w| {
                let value = cells.get(s).and_then(|r| r.get(w)).copied().flatten();
                let color = value.map_or(GREY, accuracy_color);
                Rectangle::new(cell(s, w), color.filled())
            })
        }))?;
        chart.draw_series((0..n).flat_map(|s| {
            (0..n).map(move |w| {
                let value = cells.get(s).and_then(|r| r.get(w)).copied().flatten();
                let text = match value {
                    Some(a) => format!("{:.0}%", 100.0 * a),
                    None if s == w => String::new(),
                    None => "skipped".to_string(),
                };
                Text::new(
                    text,
                    (SegmentValue::CenterOf(w), SegmentValue::CenterOf(n - 1 - s)),
                    TextStyle::from((FONT, 13).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            })
        }))?;
        Ok(())
    })
}

fn flip(v: &SegmentValue<usize>, n: usize) -> SegmentValue<usize> {
    match v {
        SegmentValue::CenterOf(i) if *i < n => SegmentValue::CenterOf(n - 1 - i),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_their_labels() {
        let bars = accuracy_bars(
            "accuracy per subset",
            &[("code-python".into(), 0.75, 4), ("code-js".into(), 0.5, 2)],
        )
        .unwrap();
        let one = accuracy_bars("one group", &[("all".into(), 1.0, 3)]).unwrap();
        assert!(one.contains("100.0% of 3"));
        assert!(bars.starts_with("<svg") && bars.contains("code-python"));
        assert!(bars.contains("75.0% of 4"));
        let hist = margin_histogram("margins", &[-1.0, 0.5, 2.0, 3.0]).unwrap();
        assert!(hist.contains("<rect"));
        let scatter =
            reward_vs_length("length", &[(10.0, 1.0), (20.0, 2.0)], &[(5.0, 0.0)]).unwrap();
        assert!(scatter.contains("r = 0.9") && scatter.contains("<circle"));
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let heat = pair_heat_map(
            "pairs",
            &names,
            &[
                vec![None, Some(0.75), None],
                vec![Some(0.25), None, None],
                vec![None, None, None],
            ],
        )
        .unwrap();
        assert!(heat.contains("75%") && heat.contains("25%") && heat.contains("skipped"));
    }

    #[test]
    fn fit_finds_a_line() {
        let (slope, intercept, r) = fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
        assert!((r - 1.0).abs() < 1e-12);
        assert!(fit(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none());
    }
}
