//! Length-aware batching under a token budget.

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
}
