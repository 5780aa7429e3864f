//! `GET /events`: server-sent events for every change, typed JSON, with
//! keep-alives. A subscriber that falls behind gets a `resync` event and
//! should refetch; the stream ends when the site stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::api::types::SiteEvent;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(site): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = site.events.subscribe();
    let stop = site.stopping.subscribe();
    let stream = futures_util::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            received = rx.recv() => match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => SiteEvent::Resync,
                Err(RecvError::Closed) => return None,
            },
        };
        let sse = Event::default()
            .event(event.name())
            .json_data(&event)
            .unwrap_or_else(|_| {
                Event::default()
                    .event("resync")
                    .data("{\"type\":\"resync\"}")
            });
        Some((Ok(sse), (rx, stop)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(2)))
}
