//! Which queues a fetch takes its tasks from, for a consumer of several queues.
//!
//! Weighted (the default): each task the fetcher may take is given to a queue by smooth
//! weighted round-robin, so with every queue full the tasks taken follow the weights exactly
//! over a few rounds, in an interleaved order (6:3:1 gives `a a b a c a b a a b …`, never six
//! `a`s first). Strict: every task goes to the first queue; what it cannot give, the next one
//! is asked for, and so on. Either way a queue that comes back short hands its share to the
//! queues after it in the same round (see the fetcher), so no worker idles while any queue has
//! work. One queue is the common case and costs one fetch per round, as before.

/// The queue picker. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Picker {
    weights: Vec<i64>,
    current: Vec<i64>,
    strict: bool,
}

impl Picker {
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>, strict: bool) -> Self {
        let weights: Vec<i64> = weights.into_iter().map(|w| i64::from(w.max(1))).collect();
        let current = vec![0; weights.len()];
        Self {
            weights,
            current,
            strict,
        }
    }

    /// How many of `n` tasks to ask each queue for, by queue index (zeros for queues that get
    /// none).
    pub(crate) fn plan(&mut self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; self.weights.len()];
        if counts.is_empty() {
            return counts;
        }
        if self.strict || counts.len() == 1 {
            counts[0] = n;
            return counts;
        }
        let total: i64 = self.weights.iter().sum();
        for _ in 0..n {
            let mut best = 0;
            for (i, w) in self.weights.iter().enumerate() {
                self.current[i] += w;
                if self.current[i] > self.current[best] {
                    best = i;
                }
            }
            self.current[best] -= total;
            counts[best] += 1;
        }
        counts
    }

    /// The order in which queues are asked for what others could not give: list order when
    /// strict, else heaviest first.
    pub(crate) fn fallback_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.weights.len()).collect();
        if !self.strict {
            order.sort_by_key(|&i| std::cmp::Reverse(self.weights[i]));
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::Picker;

    #[test]
    fn weighted_shares_follow_the_weights_and_interleave() {
        let mut p = Picker::new([6, 3, 1], false);
        let mut total = [0usize; 3];
        for _ in 0..100 {
            let plan = p.plan(1);
            for (t, c) in total.iter_mut().zip(plan) {
                *t += c;
            }
        }
        assert_eq!(total, [60, 30, 10]);
        let mut p = Picker::new([6, 3, 1], false);
        let first: Vec<usize> = (0..10)
            .map(|_| p.plan(1).iter().position(|c| *c == 1).unwrap())
            .collect();
        assert_eq!(
            first.iter().take(6).filter(|q| **q == 0).count(),
            4,
            "{first:?}"
        );
        assert_eq!(p.plan(20), vec![12, 6, 2]);
    }

    #[test]
    fn strict_and_single_queues_ask_the_first() {
        assert_eq!(Picker::new([1, 5], true).plan(7), vec![7, 0]);
        assert_eq!(Picker::new([3], false).plan(7), vec![7]);
        assert_eq!(Picker::new([1, 5, 2], true).fallback_order(), vec![0, 1, 2]);
        assert_eq!(
            Picker::new([1, 5, 2], false).fallback_order(),
            vec![1, 2, 0]
        );
    }
}
