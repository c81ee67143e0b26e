//! `cdr route`: which domain each row is routed to (field, likelihood or llm router), with a
//! per-subset table and, given gold labels, the routing accuracy.

use cdr_core::engine::{self, RowInfo, ScoredRow};
use cdr_data::{RecordWriter, Row, read_rows};

use crate::cli::RouteArgs;
use crate::printer::Printer;
use crate::settings::{read_options, routing};

#[derive(serde::Serialize)]
struct RoutedRow<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gold: Option<String>,
}

pub fn run(args: RouteArgs, printer: &mut Printer) -> anyhow::Result<()> {
    args.compute.validate()?;
    let device = args.compute.device;
    let outcome = read_rows(&args.io.input, &read_options(&args.io))?;
    for s in &outcome.skipped {
        printer.note(format_args!("skipped invalid row: {}", s.message));
    }
    let mut settings = routing(&args.customize);
    let custom = match engine::customization(&settings)? {
        Some(c) => c,
        None => cdr_core::Customization::default_config()?,
    };
    let infos: Vec<RowInfo<'_>> = outcome.rows.iter().map(ScoredRow::info).collect();
    settings.router_model = settings.router_model.or(args.strong.clone());
    if settings.router != engine::RouterKind::Field && settings.router_model.is_none() {
        anyhow::bail!(
            "--router {} needs a router model (--router-model or --strong)",
            settings.router
        );
    }
    let router = engine::router(
        &settings,
        None,
        engine::RouterCompute {
            device: &device,
            dtype: args.compute.dtype_for(&[]),
            max_batch_tokens: args.compute.max_batch_tokens,
            template: args.template.as_deref(),
        },
    )?;
    let domains = engine::route(
        &custom,
        settings.router,
        &infos,
        router.as_ref(),
        &args.io.input.display().to_string(),
        printer,
    )?;
    let gold = |r: &Row| -> Option<String> {
        let field = args.gold_field.as_deref()?;
        let label = if field == args.io.domain_field {
            r.domain().map(str::to_string)
        } else {
            r.extra()
                .get(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }?;
        Some(
            custom
                .canonical_domain(&label)
                .unwrap_or(&label)
                .to_string(),
        )
    };

    let mut writer = match &args.output {
        Some(path) => Some(RecordWriter::open(
            path,
            &cdr_data::WriteOptions {
                fresh: true,
                ..Default::default()
            },
        )?),
        None => None,
    };
    // subset -> domain -> count, and gold -> predicted -> count.
    let mut by_subset: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, usize>,
    > = Default::default();
    let mut confusion: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, usize>,
    > = Default::default();
    let (mut correct, mut with_gold) = (0usize, 0usize);
    for r in &outcome.rows {
        let domain = domains.get(r.id()).map(String::as_str).unwrap_or("?");
        let g = gold(r);
        *by_subset
            .entry(r.subset().unwrap_or("(none)").to_string())
            .or_default()
            .entry(domain.to_string())
            .or_default() += 1;
        if let Some(g) = &g {
            with_gold += 1;
            correct += usize::from(g == domain);
            *confusion
                .entry(g.clone())
                .or_default()
                .entry(domain.to_string())
                .or_default() += 1;
        }
        if let Some(w) = writer.as_mut() {
            w.write(&RoutedRow {
                id: r.id(),
                subset: r.subset(),
                domain,
                gold: g,
            })?;
        }
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    let names: Vec<&str> = custom.domain_names().collect();
    printer.out(format_args!("| subset | rows | {} |\n", names.join(" | ")));
    printer.out(format_args!("|---|---:|{}\n", "---:|".repeat(names.len())));
    for (subset, counts) in &by_subset {
        let total: usize = counts.values().sum();
        let cells: Vec<String> = names
            .iter()
            .map(|d| {
                format!(
                    "{:.1}%",
                    100.0 * *counts.get(*d).unwrap_or(&0) as f64 / total as f64
                )
            })
            .collect();
        printer.out(format_args!(
            "| {subset} | {total} | {} |\n",
            cells.join(" | ")
        ));
    }
    if with_gold > 0 {
        printer.out(format_args!(
            "\nrouting accuracy: {:.2}% ({correct} of {with_gold} rows with a gold domain)\n\n",
            100.0 * correct as f64 / with_gold as f64
        ));
        printer.out(format_args!("| gold \\ routed | {} |\n", names.join(" | ")));
        printer.out(format_args!("|---|{}\n", "---:|".repeat(names.len())));
        for (g, row) in &confusion {
            let cells: Vec<String> = names
                .iter()
                .map(|d| row.get(*d).unwrap_or(&0).to_string())
                .collect();
            printer.out(format_args!("| {g} | {} |\n", cells.join(" | ")));
        }
    }
    Ok(())
}
