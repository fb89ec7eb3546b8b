//! A one-shot job the UI waits for without blocking: `Pending` until the backend answers.

use tokio::sync::oneshot;

/// The UI side of a one-shot request.
pub enum Requested<T, E> {
    Pending(oneshot::Receiver<Result<T, E>>),
    Done(Result<T, E>),
}

/// The backend side: answer exactly once.
pub struct Reply<T, E> {
    tx: oneshot::Sender<Result<T, E>>,
    waker: Option<super::Waker>,
}

impl<T, E> Reply<T, E> {
    pub fn send(self, result: Result<T, E>) {
        // The UI may have dropped its `Requested` (panel closed): then nobody wants the answer.
        self.tx.send(result).ok();
        if let Some(w) = self.waker {
            w();
        }
    }
}

impl<T, E> Requested<T, E> {
    /// A new pending request and the reply handle for the backend.
    pub fn new(waker: Option<super::Waker>) -> (Self, Reply<T, E>) {
        let (tx, rx) = oneshot::channel();
        (Requested::Pending(rx), Reply { tx, waker })
    }

    /// Checks for the answer without blocking. `None` while pending.
    pub fn poll(&mut self) -> Option<&Result<T, E>>
    where
        E: From<Abandoned>,
    {
        if let Requested::Pending(rx) = self {
            match rx.try_recv() {
                Ok(r) => *self = Requested::Done(r),
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    *self = Requested::Done(Err(E::from(Abandoned)));
                }
            }
        }
        match self {
            Requested::Done(r) => Some(r),
            Requested::Pending(_) => None,
        }
    }

    /// Waits for the answer (for the backend's own tasks and tests; the UI polls).
    pub async fn wait(self) -> Result<T, E>
    where
        E: From<Abandoned>,
    {
        match self {
            Requested::Pending(rx) => rx.await.unwrap_or_else(|_| Err(E::from(Abandoned))),
            Requested::Done(r) => r,
        }
    }
}

/// The backend dropped the request without answering (it is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backend stopped before answering")]
pub struct Abandoned;

impl From<Abandoned> for String {
    fn from(a: Abandoned) -> String {
        a.to_string()
    }
}

impl From<Abandoned> for crate::i18n::L10n {
    fn from(a: Abandoned) -> Self {
        crate::i18n::L10n::new(a.to_string(), "后台在回答之前已停止")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_then_done() {
        let (mut req, reply) = Requested::<u32, String>::new(None);
        assert!(req.poll().is_none());
        reply.send(Ok(7));
        assert_eq!(req.poll(), Some(&Ok(7)));
        assert_eq!(req.poll(), Some(&Ok(7)));
    }

    #[test]
    fn dropped_reply_is_an_error() {
        let (mut req, reply) = Requested::<u32, String>::new(None);
        drop(reply);
        assert_eq!(
            req.poll(),
            Some(&Err("the backend stopped before answering".to_owned()))
        );
    }
}
