//! The topic tree: one node per topic level, with message counts (own and below), the last
//! payload, the retained flag, a decaying message rate and the time of the last message. Rows
//! to draw are flattened only for expanded nodes, so 100 000 topics stay cheap.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

/// Seconds over which the rate decays.
const RATE_TAU_S: f64 = 5.0;

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: Box<str>,
    pub parent: usize,
    pub depth: u16,
    pub children: BTreeMap<Box<str>, usize>,
    /// Messages on exactly this topic.
    pub count: u64,
    /// Messages on this topic and below.
    pub total: u64,
    pub last_payload: Option<Bytes>,
    pub last_ms: i64,
    /// The broker holds a retained message here: one arrived with the retain flag (sent from
    /// the broker's store on subscribing) and no empty payload (a "clear") came since.
    /// Messages forwarded live arrive without the flag (MQTT 3.1.1 §3.3.1.3) even when their
    /// publisher retained them, so they leave the mark as it was.
    pub retained: bool,
    rate_ema: f64,
}

impl Node {
    /// Messages per second, decayed to `now_ms`.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let dt = ((now_ms - self.last_ms).max(0) as f64) / 1000.0;
        self.rate_ema * (-dt / RATE_TAU_S).exp()
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Bumped whenever a node is added: cached row lists are then stale.
    pub generation: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: vec![Node::default()],
            generation: 0,
        }
    }
}

impl Tree {
    pub const ROOT: usize = 0;

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i.min(self.nodes.len() - 1)]
    }

    /// Topics (nodes) known, the root excluded.
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    pub fn on_message(&mut self, topic: &str, payload: &Bytes, retain: bool, now_ms: i64) -> usize {
        let mut at = Self::ROOT;
        for level in topic.split('/') {
            let next = match self.nodes[at].children.get(level) {
                Some(&n) => n,
                None => {
                    let n = self.nodes.len();
                    let depth = self.nodes[at].depth + 1;
                    self.nodes.push(Node {
                        name: level.into(),
                        parent: at,
                        depth,
                        ..Node::default()
                    });
                    self.nodes[at].children.insert(level.into(), n);
                    self.generation += 1;
                    n
                }
            };
            self.nodes[at].total += 1;
            at = next;
        }
        let n = &mut self.nodes[at];
        n.total += 1;
        n.count += 1;
        let dt = ((now_ms - n.last_ms).max(0) as f64) / 1000.0;
        n.rate_ema = n.rate_ema * (-dt / RATE_TAU_S).exp() + 1.0 / RATE_TAU_S;
        n.last_ms = now_ms;
        if payload.is_empty() {
            n.retained = false;
        } else if retain {
            n.retained = true;
        }
        // A copy: a slice would pin the connection's whole read buffer for as long as the
        // topic exists.
        n.last_payload = Some(Bytes::copy_from_slice(&payload[..payload.len().min(256)]));
        at
    }

    /// The full topic of a node.
    pub fn topic(&self, mut i: usize) -> String {
        let mut parts = Vec::new();
        while i != Self::ROOT && i < self.nodes.len() {
            parts.push(&*self.nodes[i].name);
            i = self.nodes[i].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The node of a topic, if known.
    pub fn find(&self, topic: &str) -> Option<usize> {
        let mut at = Self::ROOT;
        for level in topic.split('/') {
            at = *self.nodes[at].children.get(level)?;
        }
        Some(at)
    }

    /// Rows to draw: children of expanded nodes, depth first; with `filter`, only topics
    /// containing it (case-insensitive) and their ancestors, all open.
    pub fn rows(&self, expanded: &HashSet<usize>, filter: &str) -> Vec<usize> {
        self.rows_with(|i| expanded.contains(&i), filter)
    }

    /// [`Tree::rows`] with the open nodes said by `open` (the panel keeps a flag per node:
    /// no hashing for each of 200 000 nodes).
    pub fn rows_with(&self, open: impl Fn(usize) -> bool, filter: &str) -> Vec<usize> {
        let mut out = Vec::new();
        if filter.is_empty() {
            let mut stack: Vec<usize> = self.nodes[Self::ROOT]
                .children
                .values()
                .rev()
                .copied()
                .collect();
            while let Some(i) = stack.pop() {
                out.push(i);
                if open(i) {
                    stack.extend(self.nodes[i].children.values().rev().copied());
                }
            }
            return out;
        }
        let needle = filter.to_lowercase();
        // Without a '/', a topic contains the text exactly when one of its levels does: test
        // each level once, without building full topic names (100 000 topics in a frame).
        let per_level = !needle.contains('/');
        let level_has = |name: &str| {
            let n = needle.as_bytes();
            name.as_bytes()
                .windows(n.len().max(1))
                .any(|w| w.eq_ignore_ascii_case(n))
                || (!name.is_ascii() && name.to_lowercase().contains(&needle))
        };
        // Which nodes match or have a matching descendant. Children always come after their
        // parent in the arena, so one reverse pass carries marks upward; `hit` carries
        // "an ancestor's level matched" downward in a forward pass first.
        let mut hit = vec![false; self.nodes.len()];
        if per_level {
            for i in 1..self.nodes.len() {
                hit[i] = hit[self.nodes[i].parent] || level_has(&self.nodes[i].name);
            }
        }
        let mut keep = vec![false; self.nodes.len()];
        for i in (1..self.nodes.len()).rev() {
            let matched = if per_level {
                hit[i]
            } else {
                self.topic(i).to_lowercase().contains(&needle)
            };
            if keep[i] || matched {
                keep[i] = true;
                keep[self.nodes[i].parent] = true;
            }
        }
        let mut stack: Vec<usize> = self.nodes[Self::ROOT]
            .children
            .values()
            .rev()
            .copied()
            .collect();
        while let Some(i) = stack.pop() {
            if !keep[i] {
                continue;
            }
            out.push(i);
            stack.extend(self.nodes[i].children.values().rev().copied());
        }
        out
    }

    /// Retained topics at or below `prefix` (for "clear retained").
    pub fn retained_under(&self, prefix: &str) -> Vec<String> {
        let start = if prefix.is_empty() {
            Self::ROOT
        } else {
            match self.find(prefix.trim_end_matches('/')) {
                Some(i) => i,
                None => return Vec::new(),
            }
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if self.nodes[i].retained {
                out.push(self.topic(i));
            }
            stack.extend(self.nodes[i].children.values().copied());
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_retained() {
        let mut t = Tree::default();
        let p = Bytes::from_static(b"1");
        t.on_message("a/b/c", &p, false, 0);
        t.on_message("a/b/d", &p, true, 0);
        t.on_message("a/x", &p, true, 0);
        t.on_message("$SYS/up", &p, false, 0);
        assert_eq!(t.len(), 7);
        let a = t.find("a").unwrap();
        assert_eq!(t.node(a).total, 3);
        assert_eq!(t.node(a).count, 0);
        assert_eq!(t.topic(t.find("a/b/d").unwrap()), "a/b/d");
        let closed = t.rows(&HashSet::new(), "");
        assert_eq!(closed.len(), 2, "only the top levels");
        let mut open = HashSet::new();
        open.insert(a);
        assert_eq!(t.rows(&open, "").len(), 4);
        let found = t.rows(&HashSet::new(), "D");
        assert_eq!(
            found.iter().map(|&i| t.topic(i)).collect::<Vec<_>>(),
            vec!["a", "a/b", "a/b/d"]
        );
        assert_eq!(t.retained_under("a"), vec!["a/b/d", "a/x"]);
        assert_eq!(t.retained_under("a/b"), vec!["a/b/d"]);
        // A live message on a retained topic arrives without the flag: the broker still
        // holds the retained one, so the mark stays.
        t.on_message("a/b/d", &p, false, 1);
        assert!(t.node(t.find("a/b/d").unwrap()).retained);
        // An empty message (a clear, forwarded live without the flag too) removes it.
        t.on_message("a/x", &Bytes::new(), false, 1);
        assert_eq!(t.retained_under(""), vec!["a/b/d"]);
    }

    #[test]
    fn rate_decays() {
        let mut t = Tree::default();
        let p = Bytes::from_static(b"1");
        for i in 0..50 {
            t.on_message("r", &p, false, i * 100);
        }
        let n = t.node(t.find("r").unwrap());
        assert!(n.rate(4900) > 5.0, "{}", n.rate(4900));
        assert!(n.rate(60_000) < 0.1);
    }
}
