//! Messages per second over the last two minutes, one bucket per wall-clock second.

use std::collections::VecDeque;

/// Seconds of message-rate history.
pub const RATE_WINDOW_SECS: i64 = 120;

/// Messages per second, one bucket per wall-clock second.
#[derive(Debug, Default)]
pub struct RateSeries {
    buckets: VecDeque<(i64, u32)>,
}

impl RateSeries {
    pub fn add(&mut self, second: i64) {
        match self.buckets.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.buckets.push_back((second, 1)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s <= second - RATE_WINDOW_SECS)
        {
            self.buckets.pop_front();
        }
    }

    /// Messages in the last complete second before `now`.
    pub fn per_second(&self, now: i64) -> u32 {
        self.buckets
            .iter()
            .rev()
            .find(|(s, _)| *s == now - 1)
            .map_or(0, |(_, n)| *n)
    }

    /// Seconds with at least one message still in the window.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// `(seconds relative to now, count)` for every second of the window, zeros included.
    pub fn points(&self, now: i64) -> Vec<[f64; 2]> {
        let mut out = Vec::with_capacity(RATE_WINDOW_SECS as usize);
        let mut it = self.buckets.iter().peekable();
        for s in (now - RATE_WINDOW_SECS + 1)..=now {
            while it.peek().is_some_and(|(b, _)| *b < s) {
                it.next();
            }
            let n = match it.peek() {
                Some((b, n)) if *b == s => *n,
                _ => 0,
            };
            out.push([(s - now) as f64, f64::from(n)]);
        }
        out
    }
}
