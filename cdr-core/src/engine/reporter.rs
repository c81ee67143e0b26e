//! Where a run reports progress and events: the CLI draws a bar and prints notices on stderr, a
//! library caller may ignore them ([`Silent`]).

/// Progress and events of a run. Every method has a default that does nothing.
pub trait Reporter {
    /// A stage (`score`, `eval`, `annotate`, `route`) begins with `rows` rows to do.
    fn begin(&mut self, _stage: &str, _rows: usize) {}
    /// Forward-pass tokens computed (both models of a pair count).
    fn tokens(&mut self, _n: usize) {}
    /// The forward-pass tokens the current stage is expected to compute in all (both models of a
    /// pair count), so progress can be shown in tokens from the first batch on. Called after
    /// [`Reporter::begin`] and again whenever the figure changes: rows are tokenized a chunk at a
    /// time, so until the last chunk the rest is extrapolated from the rows tokenized so far, and
    /// work the log-prob cache saves is taken off. Stages that never call it count in rows.
    fn planned_tokens(&mut self, _total: usize) {}
    /// Rows finished (scored or skipped).
    fn rows(&mut self, _n: usize) {}
    /// The current stage is over.
    fn end(&mut self) {}
    /// A row left out under `skip_invalid`, and why.
    fn skipped(&mut self, _id: &str, _why: &str) {}
    /// Something the user should know that is not an error (dropped cache entries, rows the
    /// router could not place).
    fn notice(&mut self, _text: &str) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}

/// Runs `work` as a stage of `rows` rows: [`Reporter::begin`] before, [`Reporter::end`] after,
/// also when it fails, so a reporter never sees a stage left open.
pub(crate) fn in_stage<T>(
    reporter: &mut dyn Reporter,
    stage: &str,
    rows: usize,
    work: impl FnOnce(&mut dyn Reporter) -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    reporter.begin(stage, rows);
    let result = work(reporter);
    reporter.end();
    result
}
