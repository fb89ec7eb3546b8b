//! The console's broker connections: several open at once, one of them *active* (the one
//! the Topics and Devices panels publish through and show). Switching the active connection
//! keeps the others running; their messages keep arriving, tagged with their id.

use super::connections::Route;
use crate::mqtt::ConnState;
use crate::mqtt::worker::Worker;

/// Names one connection for the life of the console (never reused).
pub type ConnId = u32;

/// At most this many connections at once.
pub const MAX_CONNECTIONS: usize = 6;

/// One open connection as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    /// The profile's name, or "sandbox".
    pub label: String,
    pub url: String,
    /// 4 (MQTT 3.1.1) or 5.
    pub protocol: u8,
    pub state: ConnState,
    /// Certificate verification is off for this connection.
    pub insecure: bool,
}

pub(super) struct Conn {
    pub id: ConnId,
    pub label: String,
    pub worker: Worker,
    /// Where a second connection to the same broker goes.
    pub route: Route,
}

#[derive(Default)]
pub(super) struct Conns {
    pub active: Option<Conn>,
    others: Vec<Conn>,
    last_id: ConnId,
}

impl Conns {
    pub fn next_id(&mut self) -> ConnId {
        self.last_id += 1;
        self.last_id
    }

    pub fn worker(&self) -> Option<&Worker> {
        self.active.as_ref().map(|c| &c.worker)
    }

    pub fn len(&self) -> usize {
        self.others.len() + usize::from(self.active.is_some())
    }

    /// The open connection with this label (a profile connected twice is replaced).
    pub fn find_label(&self, label: &str) -> Option<ConnId> {
        self.active
            .iter()
            .chain(&self.others)
            .find(|c| c.label == label)
            .map(|c| c.id)
    }

    /// Makes `conn` the active connection; the previous one keeps running in the background.
    pub fn push_active(&mut self, conn: Conn) {
        if let Some(old) = self.active.replace(conn) {
            self.others.push(old);
        }
    }

    /// Makes an open connection the active one; false when there is none with this id.
    pub fn activate(&mut self, id: ConnId) -> bool {
        if self.active.as_ref().is_some_and(|c| c.id == id) {
            return true;
        }
        let Some(i) = self.others.iter().position(|c| c.id == id) else {
            return false;
        };
        let conn = self.others.remove(i);
        self.push_active(conn);
        true
    }

    /// Removes a connection (the caller stops it). When it was the active one, the most
    /// recently backgrounded connection becomes active.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        if self.active.as_ref().is_some_and(|c| c.id == id) {
            let gone = self.active.take();
            self.active = self.others.pop();
            return gone;
        }
        let i = self.others.iter().position(|c| c.id == id)?;
        Some(self.others.remove(i))
    }

    pub fn active_id(&self) -> Option<ConnId> {
        self.active.as_ref().map(|c| c.id)
    }

    /// Every connection, for shutdown.
    pub fn drain(&mut self) -> Vec<Conn> {
        let mut all: Vec<Conn> = self.others.drain(..).collect();
        all.extend(self.active.take());
        all
    }
}
