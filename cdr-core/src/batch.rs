//! Length-aware batching under a token budget.

use std::collections::HashMap;

use cdr_models::MIN_SHARED_PREFIX;

/// Groups item indices into batches whose padded size (`items x longest`) stays within
/// `max_batch_tokens`. Items are taken longest first, so each batch holds similar lengths and
/// little compute goes to padding; an item longer than the budget gets a batch of its own.
pub fn plan_batches(lengths: &[usize], max_batch_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = lengths[i];
        let new_longest = longest.max(len);
        if !current.is_empty() && new_longest * (current.len() + 1) > max_batch_tokens {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// A sequence as [`plan_shared_batches`] sees it: its length, and the prefix it may share with
/// others (the prompt, up to the token before the first scored one).
#[derive(Debug, Clone, Copy)]
pub struct SeqShape<'a> {
    pub len: usize,
    pub prefix: &'a [u32],
}

/// Like [`plan_batches`], but sequences with the same prefix — a prompt's chosen and rejected
/// responses, its N candidates — share batches of their own, in which the model runs the prefix
/// once ([`cdr_models::LlamaForCausalLm::score_spans`]). Such a batch costs
/// `prefix + rows x longest continuation` tokens of the budget. Sequences without company, or whose
/// prefix is too short to pay for the extra pass, are batched by length as before.
pub fn plan_shared_batches(seqs: &[SeqShape<'_>], max_batch_tokens: usize) -> Vec<Vec<usize>> {
    let mut groups: HashMap<&[u32], Vec<usize>> = HashMap::new();
    let mut order: Vec<&[u32]> = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        if s.prefix.len() < MIN_SHARED_PREFIX {
            continue;
        }
        groups
            .entry(s.prefix)
            .or_insert_with(|| {
                order.push(s.prefix);
                Vec::new()
            })
            .push(i);
    }
    let mut batches = Vec::new();
    let mut alone = vec![true; seqs.len()];
    for prefix in order {
        let mut members = groups.remove(prefix).unwrap_or_default();
        if members.len() < 2 {
            continue;
        }
        members.sort_by(|&a, &b| seqs[b].len.cmp(&seqs[a].len).then(a.cmp(&b)));
        let mut current: Vec<usize> = Vec::new();
        let mut longest = 0;
        for i in members {
            let cont = seqs[i].len - prefix.len();
            let new_longest = longest.max(cont);
            if !current.is_empty()
                && prefix.len() + new_longest * (current.len() + 1) > max_batch_tokens
            {
                take_shared(&mut batches, &mut current, &mut alone);
                longest = 0;
            }
            longest = longest.max(cont);
            current.push(i);
        }
        take_shared(&mut batches, &mut current, &mut alone);
    }
    let rest: Vec<usize> = (0..seqs.len()).filter(|&i| alone[i]).collect();
    let lengths: Vec<usize> = rest.iter().map(|&i| seqs[i].len).collect();
    for batch in plan_batches(&lengths, max_batch_tokens) {
        batches.push(batch.into_iter().map(|j| rest[j]).collect());
    }
    batches
}

/// Closes a shared-prefix batch; a lone member goes back to the length-sorted pool.
fn take_shared(batches: &mut Vec<Vec<usize>>, current: &mut Vec<usize>, alone: &mut [bool]) {
    if current.len() >= 2 {
        for &i in current.iter() {
            alone[i] = false;
        }
        batches.push(std::mem::take(current));
    } else {
        current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respects_the_budget_and_covers_every_item() {
        let lengths = [5, 100, 7, 60, 60, 3, 200];
        let batches = plan_batches(&lengths, 128);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() == 1 || longest * b.len() <= 128, "{b:?}");
        }
        assert_eq!(batches[0], vec![6], "over-budget item alone");
    }

    #[test]
    fn shared_prefixes_batch_together_and_everything_is_covered() {
        let p: Vec<u32> = (0..40).collect();
        let q: Vec<u32> = (100..140).collect();
        let short: Vec<u32> = (0..5).collect();
        let seqs = [
            SeqShape {
                len: 90,
                prefix: &p,
            },
            SeqShape {
                len: 60,
                prefix: &q,
            },
            SeqShape {
                len: 70,
                prefix: &p,
            },
            SeqShape {
                len: 50,
                prefix: &short,
            },
            SeqShape {
                len: 55,
                prefix: &short,
            },
            SeqShape {
                len: 100,
                prefix: &p,
            },
            SeqShape {
                len: 80,
                prefix: &q,
            },
        ];
        let batches = plan_shared_batches(&seqs, 10_000);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..seqs.len()).collect::<Vec<_>>());
        assert!(batches.contains(&vec![5, 0, 2]), "{batches:?}");
        assert!(batches.contains(&vec![6, 1]), "{batches:?}");
        // Short prefixes are not worth sharing: they go to the length-sorted pool.
        assert!(batches.contains(&vec![4, 3]), "{batches:?}");

        // Budget 40 + 2 x 60 = 160 fits two of p's continuations (60, 50) but not three.
        let batches = plan_shared_batches(&seqs, 160);
        assert!(batches.contains(&vec![5, 0]), "{batches:?}");
        assert!(
            batches
                .iter()
                .any(|b| b == &vec![2] || b.contains(&2) && !b.contains(&5))
        );
    }
}
