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
