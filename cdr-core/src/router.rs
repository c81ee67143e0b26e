//! Domain routers: which customization a query gets.

use cdr_data::Message;
use cdr_prompt::{ChatTemplate, Customization};

use crate::encode::{Encoded, Limits, encode};
use crate::error::Result;
use crate::reward::sum_logprobs;
use crate::scorer::ModelScorer;

/// Routes by asking a model: the classification prompt as a user turn, each domain name scored
/// as the assistant's answer; the most likely name wins (ties go to the earlier domain). No
/// generation is needed, and any causal LM that loads can serve.
pub struct LikelihoodRouter {
    scorer: ModelScorer,
    template: ChatTemplate,
    limits: Limits,
    max_batch_tokens: usize,
    calibrate: bool,
}

impl LikelihoodRouter {
    /// A router on `scorer`'s model, rendering the classification prompt with `template`.
    pub fn new(
        scorer: ModelScorer,
        template: ChatTemplate,
        limits: Limits,
        max_batch_tokens: usize,
    ) -> Self {
        Self {
            scorer,
            template,
            limits,
            max_batch_tokens,
            calibrate: false,
        }
    }

    /// Subtract each label's log-probability under the classification prompt with an empty
    /// conversation, so a small router model's preference for one label's tokens (whatever the
    /// query) does not decide the route ("contextual calibration").
    pub fn calibrated(mut self, yes: bool) -> Self {
        self.calibrate = yes;
        self
    }

    /// Each conversation's domain, plus the per-domain log-probabilities behind the choice.
    pub fn route(
        &self,
        customization: &Customization,
        conversations: &[&[Message]],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<(String, Vec<f64>)>> {
        let domains: Vec<&str> = customization.domain_names().collect();
        let mut encoded: Vec<Encoded> = Vec::with_capacity(conversations.len() * domains.len());
        let empty: [&[Message]; 1] = [&[]];
        let baseline_convos: &[&[Message]] = if self.calibrate { &empty } else { &[] };
        for convo in baseline_convos.iter().chain(conversations) {
            let question = [Message::user(customization.router_prompt(convo))];
            for d in &domains {
                let rendered = self.template.render_pair(&question, d)?;
                encoded.push(encode(&self.scorer.tokenizer, &rendered, self.limits)?);
            }
        }
        let refs: Vec<&Encoded> = encoded.iter().collect();
        let logprobs = self
            .scorer
            .response_logprobs(&refs, self.max_batch_tokens, progress)?;
        let mut chunks = logprobs.chunks(domains.len());
        let baseline: Vec<f64> = match self.calibrate {
            true => chunks
                .next()
                .map(|c| c.iter().map(|lp| sum_logprobs(lp)).collect())
                .unwrap_or_default(),
            false => vec![0.0; domains.len()],
        };
        Ok(chunks
            .map(|per_domain| {
                let sums: Vec<f64> = per_domain
                    .iter()
                    .zip(&baseline)
                    .map(|(lp, b)| sum_logprobs(lp) - b)
                    .collect();
                let best = (0..sums.len()).fold(0, |b, i| if sums[i] > sums[b] { i } else { b });
                (domains[best].to_string(), sums)
            })
            .collect())
    }
}
