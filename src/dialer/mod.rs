//! The campaign engine: who is called when. The scheduler claims due leads within their
//! calling windows and the caps and places calls through Exotel; status webhooks and the
//! reconciler settle them; `settle` turns a finished call into the lead's next state.

pub mod api;
pub mod rate;
pub mod reconciler;
pub mod scheduler;
pub mod settle;
pub mod window;

pub use scheduler::{Dialer, DialerError, Outcome};
