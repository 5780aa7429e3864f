//! The terminal program: one owner of the terminal (entered here, restored
//! on quit, on error and on panic), one loop that turns keys, feed updates
//! and ticks into actions, and redraws only when something changed, at most
//! ten times a second, so it stays light over SSH.

use std::time::Duration;

use ferry_api::client::status_line;
use ferry_api::types::{ErrorBody, InstanceInfo};
use ferry_api::{Call, Client, ClientError, Failure};
use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{Action, App, Effect, RunCall, RunReply};
use crate::editor::{Reply, Request};
use crate::feed::{self, Endpoint};
use crate::model::{Model, SiteState};
use crate::theme::Theme;
use crate::{keys, ui};

const MIN_FRAME: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_secs(1);

/// The terminal could not be drawn on.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw: {0}")]
pub struct DrawError(#[from] std::io::Error);

/// Runs the TUI on `endpoints` until the operator quits.
pub async fn run(
    endpoints: Vec<Endpoint>,
    theme: Theme,
    read_only: bool,
    noc: bool,
) -> Result<(), DrawError> {
    let model = Model::new(
        endpoints
            .iter()
            .map(|e| SiteState::new(&e.name, &e.url))
            .collect(),
    );
    let mut app = App::new(model, theme, read_only, noc);
    let (feed_tx, mut feed_rx) = mpsc::unbounded_channel();
    let feeds: Vec<_> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| tokio::spawn(feed::run(i, e.clone(), feed_tx.clone())))
        .collect();
    drop(feed_tx);
    let (key_tx, mut key_rx) = mpsc::unbounded_channel();
    let reading = std::thread::spawn(move || read_terminal(key_tx));
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel::<String>();
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<Reply>();
    let (run_tx, mut run_rx) = mpsc::unbounded_channel::<RunReply>();
    let (instances_tx, mut instances_rx) = mpsc::unbounded_channel::<InstancesReply>();
    let tasks = Tasks {
        endpoints: &endpoints,
        notices: &notice_tx,
        replies: &reply_tx,
        runs: &run_tx,
        instances: &instances_tx,
    };

    let mut stop = crate::stop::Stop::listen();
    let mut terminal = ratatui::init();
    let mut ticker = tokio::time::interval(TICK);
    let mut dirty = true;
    let mut last_draw = Instant::now() - MIN_FRAME;
    let result = loop {
        if dirty && last_draw.elapsed() >= MIN_FRAME {
            if let Err(e) = terminal.draw(|frame| ui::render(&app, frame)) {
                break Err(DrawError(e));
            }
            dirty = false;
            last_draw = Instant::now();
        }
        let redraw_at = last_draw + MIN_FRAME;
        tokio::select! {
            Some(event) = key_rx.recv() => {
                match event {
                    Event::Key(key) => {
                        if let Some(action) = keys::action(key, app.scope()) {
                            if let Some(effect) = app.update(action) {
                                tasks.run(effect);
                            }
                            dirty = true;
                        }
                    }
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
            Some(update) = feed_rx.recv() => dirty |= app.feed(update),
            Some(reply) = reply_rx.recv() => {
                app.reply(reply);
                dirty = true;
            }
            Some(reply) = run_rx.recv() => {
                app.run_replied(reply);
                dirty = true;
            }
            Some((vm_id, outcome)) = instances_rx.recv() => {
                app.instances_replied(&vm_id, outcome);
                dirty = true;
            }
            Some(notice) = notice_rx.recv() => {
                app.status = Some(notice);
                dirty = true;
            }
            _ = ticker.tick() => {
                if let Some(effect) = app.update(Action::Tick) {
                    tasks.run(effect);
                }
                dirty = true;
            }
            () = tokio::time::sleep_until(redraw_at), if dirty => {}
            () = stop.requested() => app.quit = true,
        }
        if app.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    for feed in feeds {
        feed.abort();
    }
    drop(key_rx);
    let _ = reading.join();
    result
}

/// Reads terminal events on a thread of its own (crossterm's read blocks),
/// until the UI loop goes away.
fn read_terminal(tx: mpsc::UnboundedSender<Event>) {
    while !tx.is_closed() {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => match event::read() {
                Ok(event) => {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// Where effects run and where their results go.
struct Tasks<'a> {
    endpoints: &'a [Endpoint],
    notices: &'a mpsc::UnboundedSender<String>,
    replies: &'a mpsc::UnboundedSender<Reply>,
    runs: &'a mpsc::UnboundedSender<RunReply>,
    instances: &'a mpsc::UnboundedSender<InstancesReply>,
}

/// A VM's kept instances, or why they could not be listed.
type InstancesReply = (String, Result<Vec<InstanceInfo>, String>);

impl Tasks<'_> {
    fn run(&self, effect: Effect) {
        match effect {
            Effect::Post { site, call, vm } => {
                if let Some(endpoint) = self.endpoints.get(site).cloned() {
                    tokio::spawn(post(endpoint, call, vm, self.notices.clone()));
                }
            }
            Effect::Send(requests) => {
                for request in requests {
                    let endpoint = self.endpoints.get(request.site).cloned();
                    tokio::spawn(send(endpoint, request, self.replies.clone()));
                }
            }
            Effect::Run(call) => {
                let endpoint = self.endpoints.get(call.site).cloned();
                tokio::spawn(steer(endpoint, call, self.runs.clone()));
            }
            Effect::Instances { site, vm_id } => {
                let endpoint = self.endpoints.get(site).cloned();
                let replies = self.instances.clone();
                tokio::spawn(async move {
                    let outcome = match endpoint.map(|e| client(&e)) {
                        Some(Ok(client)) => client
                            .instances(&vm_id)
                            .await
                            .map_err(|e| e.to_body().message),
                        Some(Err(e)) => Err(e.to_body().message),
                        None => Err(format!("no site number {site}")),
                    };
                    let _ = replies.send((vm_id, outcome));
                });
            }
            Effect::Export(run) => {
                let notices = self.notices.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = notices.send(crate::export::write(&run));
                });
            }
        }
    }
}

/// How long a change may take before the TUI says the site did not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts or steers a run at its site; a reply always comes back.
async fn steer(
    endpoint: Option<Endpoint>,
    call: RunCall,
    replies: mpsc::UnboundedSender<RunReply>,
) {
    let outcome = match endpoint {
        Some(endpoint) => exchange(&endpoint, &call.call).await,
        None => Err(ErrorBody {
            error: "no_site".into(),
            message: format!("no site number {}", call.site),
            field: None,
        }),
    };
    let _ = replies.send(RunReply {
        site: call.site,
        purpose: call.purpose,
        outcome,
    });
}

/// Tells a replication what to do; a notice names the VM and how it went.
async fn post(endpoint: Endpoint, call: Call, vm: String, notices: mpsc::UnboundedSender<String>) {
    use crate::editor::say::{VmRefusal, vm_action};
    let verb = match &call {
        Call::Replication { verb, .. } => verb.as_str(),
        Call::AckAlarm { .. } => "acknowledge",
        _ => "change",
    };
    let outcome = match client(&endpoint) {
        Ok(client) => client.send(&call).await,
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Ok(_) => Ok(()),
        Err(e) => match e.failure {
            Failure::Status { status, body, .. } => Err(VmRefusal::Refused(
                body.map_or_else(|| status_line(status).to_lowercase(), |b| b.message),
            )),
            Failure::Unreachable { reason, .. } => Err(VmRefusal::Unreachable(reason)),
            Failure::Decode(reason) => Err(VmRefusal::Unreachable(reason)),
            failure @ Failure::Certificate { .. } => {
                Err(VmRefusal::Unreachable(failure.to_string()))
            }
        },
    };
    let notice = vm_action(&endpoint.name, verb, &vm, outcome);
    let _ = notices.send(notice);
}

/// Sends one change to the site that owns the object; whatever happens, a
/// reply goes back, so the editor never waits forever.
async fn send(endpoint: Option<Endpoint>, request: Request, replies: mpsc::UnboundedSender<Reply>) {
    let outcome = match endpoint {
        Some(endpoint) => exchange(&endpoint, &request.call).await,
        None => Err(ErrorBody {
            error: "no_site".into(),
            message: format!("no site number {}", request.site),
            field: None,
        }),
    };
    let _ = replies.send(Reply {
        purpose: request.purpose,
        outcome,
    });
}

fn client(endpoint: &Endpoint) -> Result<Client, ClientError> {
    endpoint.client(CALL_TIMEOUT)
}

/// Sends `call`; a failure comes back as the site's own [`ErrorBody`] (or
/// one in its shape), which the editors turn into sentences.
async fn exchange(endpoint: &Endpoint, call: &Call) -> Result<serde_json::Value, ErrorBody> {
    let client = client(endpoint).map_err(|e| e.to_body())?;
    client.send(call).await.map_err(|e| e.to_body())
}
