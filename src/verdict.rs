//! Verdicts: a stable id, pass / warn / fail (or skip when it does not apply), and what to do
//! about it, in English and Chinese. Certificate verdicts (`CERT-*`) and the Mini Program
//! compliance checks (`MP-*`) both speak this.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Nothing to judge (no key given, no domain given).
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

pub use crate::i18n::L10n;

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub status: Status,
    pub detail: L10n,
    /// What to do; empty when the verdict passes.
    pub remedy: L10n,
}

impl Finding {
    pub fn pass(id: &'static str, detail: L10n) -> Self {
        Finding {
            id,
            status: Status::Pass,
            detail,
            remedy: L10n::default(),
        }
    }

    pub fn skip(id: &'static str, detail: L10n) -> Self {
        Finding {
            id,
            status: Status::Skip,
            detail,
            remedy: L10n::default(),
        }
    }

    pub fn warn(id: &'static str, detail: L10n, remedy: L10n) -> Self {
        Finding {
            id,
            status: Status::Warn,
            detail,
            remedy,
        }
    }

    pub fn fail(id: &'static str, detail: L10n, remedy: L10n) -> Self {
        Finding {
            id,
            status: Status::Fail,
            detail,
            remedy,
        }
    }
}

/// The JSON shape: `detail` and `remedy` in English, `detail_zh` and `remedy_zh` in Chinese.
impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 6)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("detail", &self.detail.en)?;
        st.serialize_field("remedy", &self.remedy.en)?;
        st.serialize_field("detail_zh", &self.detail.zh)?;
        st.serialize_field("remedy_zh", &self.remedy.zh)?;
        st.end()
    }
}

/// The worst status of a list (`Pass` when empty).
pub fn worst(findings: &[Finding]) -> Status {
    findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Pass)
}
