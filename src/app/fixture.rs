//! The editors' pinned pair (`editor::fixture`) as an [`App`] at its pinned
//! clock, for the app's and the views' tests. It lives here, not beside the
//! pair, so that `editor` never imports `app`.

use super::App;
use crate::theme::Theme;

pub use crate::editor::fixture::T0;

pub fn app(read_only: bool) -> App {
    let theme = Theme::load("dark", std::path::Path::new("/nonexistent")).unwrap();
    let mut app = App::new(crate::editor::fixture::model(), theme, read_only, false);
    app.now_ms = T0;
    app
}

/// An RPO alarm about db-01 from site-a, as the feed brings it.
pub fn alarm(app: &mut App, id: i64, severity: &str, message: &str) {
    use ferry_api::types::EventRow;
    use ferry_api::types::SiteEvent;
    app.feed(crate::model::FeedUpdate::Event {
        site: 0,
        event: SiteEvent::Alarm(EventRow {
            id,
            at_ms: T0 - 60_000 + id as u64,
            kind: "rpo".into(),
            severity: severity.into(),
            vm_id: Some("site-a.db-01".into()),
            message: message.into(),
            acked: None,
        }),
    });
}
