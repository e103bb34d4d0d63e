//! A queue of jobs grouped by shape, oldest first, that remembers which
//! shapes could not start, so a replay asks about each shape once until a
//! node it fits on frees up.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// Jobs waiting by shape, oldest first, with the shapes known not to fit.
#[derive(Debug, Default)]
pub(super) struct ShapeQueue {
    shapes: HashMap<u32, VecDeque<usize>>,
    blocked: HashSet<u32>,
    /// Jobs queued.
    pub(super) len: usize,
}

impl ShapeQueue {
    /// Queues `job` (jobs arrive in index order).
    pub(super) fn push(&mut self, shape: u32, job: usize) {
        self.shapes.entry(shape).or_default().push_back(job);
        self.len += 1;
    }

    /// Lets blocked shapes whose oldest job `fits` be tried again.
    pub(super) fn unblock(&mut self, fits: impl Fn(usize) -> bool) {
        let shapes = &self.shapes;
        self.blocked.retain(|shape| {
            !shapes
                .get(shape)
                .and_then(|q| q.front())
                .is_some_and(|job| fits(*job))
        });
    }

    /// Marks a shape as unable to start until [`ShapeQueue::unblock`].
    pub(super) fn block(&mut self, shape: u32) {
        self.blocked.insert(shape);
    }

    /// (oldest job, shape) of every shape worth trying, oldest first.
    pub(super) fn ready(&self) -> BinaryHeap<Reverse<(usize, u32)>> {
        self.shapes
            .iter()
            .filter(|(shape, _)| !self.blocked.contains(shape))
            .filter_map(|(shape, q)| q.front().map(|job| Reverse((*job, *shape))))
            .collect()
    }

    /// Takes the shape's oldest job off; returns the next one.
    pub(super) fn pop(&mut self, shape: u32) -> Option<usize> {
        let queue = self.shapes.get_mut(&shape)?;
        queue.pop_front();
        self.len -= 1;
        let next = queue.front().copied();
        if next.is_none() {
            self.shapes.remove(&shape);
            self.blocked.remove(&shape);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_shapes_wait_until_they_fit() {
        let mut q = ShapeQueue::default();
        q.push(7, 0);
        q.push(3, 1);
        q.push(7, 2);
        let order: Vec<(usize, u32)> = q
            .ready()
            .into_sorted_vec()
            .into_iter()
            .rev()
            .map(|Reverse(x)| x)
            .collect();
        assert_eq!(
            order,
            [(0, 7), (1, 3)],
            "oldest job of each shape, oldest first"
        );
        q.block(7);
        assert_eq!(q.ready().len(), 1);
        q.unblock(|job| job == 99);
        assert_eq!(q.ready().len(), 1, "still does not fit");
        q.unblock(|job| job == 0);
        assert_eq!(q.ready().len(), 2);
        assert_eq!(q.pop(7), Some(2));
        assert_eq!((q.pop(7), q.len), (None, 1));
    }
}
