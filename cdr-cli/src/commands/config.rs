//! `cdr config --example`: the default customization config, to copy and edit.

use crate::cli::ConfigArgs;
use crate::printer::Printer;

pub fn run(args: &ConfigArgs, printer: &Printer) -> anyhow::Result<()> {
    if args.example {
        printer.out(cdr_prompt::customize::DEFAULT_CONFIG);
        Ok(())
    } else {
        Err(anyhow::anyhow!("nothing to do: pass --example"))
    }
}
