//! A native file or folder dialog, opened through the backend (rfd on a blocking thread), and
//! the repaint waker every panel's one-shot requests use.

use std::path::PathBuf;

use crate::backend::{FileCmd, Requested};
use crate::model::Action;

/// Repaints this UI's context when a `Requested` is answered.
pub fn waker(ui: &egui::Ui) -> Option<crate::backend::Waker> {
    let ctx = ui.ctx().clone();
    Some(std::sync::Arc::new(move || ctx.request_repaint()))
}

#[derive(Default)]
pub struct Picker {
    req: Option<Requested<Vec<PathBuf>, crate::i18n::L10n>>,
}

impl Picker {
    /// The button that opens the dialog; disabled while it is open.
    pub fn button(
        &mut self,
        ui: &mut egui::Ui,
        label: &str,
        folder: bool,
        actions: &mut Vec<Action>,
    ) {
        let open = matches!(self.req, Some(Requested::Pending(_)));
        if ui.add_enabled(!open, egui::Button::new(label)).clicked() {
            let (req, reply) = Requested::new(waker(ui));
            self.req = Some(req);
            actions.push(Action::Backend(FileCmd::PickFiles { folder, reply }.into()));
        }
    }

    /// What was picked (empty when cancelled), once; then the picker is idle again.
    pub fn take(&mut self) -> Option<Vec<PathBuf>> {
        match self.req.as_mut()?.poll()? {
            Ok(files) => {
                let files = files.clone();
                self.req = None;
                Some(files)
            }
            Err(_) => None,
        }
    }

    /// Why no dialog could be shown.
    pub fn error(&self) -> Option<&crate::i18n::L10n> {
        match &self.req {
            Some(Requested::Done(Err(e))) => Some(e),
            _ => None,
        }
    }
}
