//! What a key or a command means: one [`Action`] for `App::update`.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextView,
    PrevView,
    Show(View),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    OpenFilter,
    OpenPalette,
    OpenHelp,
    /// Esc: close what is open, else clear the filter.
    Back,
    /// Enter.
    Open,
    Type(char),
    Erase,
    Complete,
    SortNext,
    SortReverse,
    SyncNow,
    TogglePause,
    /// ← and → where they move within a view, a form or a choice.
    Left,
    Right,
    /// Saves the open editor (Ctrl-S, `w`).
    Save,
    /// Leaves without saving, when asked.
    Discard,
    /// Confirms a deletion.
    Yes,
    New,
    Delete,
    /// Space: add or remove the item under the cursor.
    Toggle,
    /// Moves a plan's VM to an earlier priority.
    Raise,
    /// Moves it to a later priority.
    Lower,
    Depends,
    TogglePower,
    Timeout,
    IpMode,
    /// The selected VM's callouts in a text area.
    Callouts,
    /// The plan's own callouts in a text area.
    PlanCallouts,
    PickGroups,
    Rename,
    /// A key for the text area, as it came.
    Input(KeyEvent),
    /// Starts a run of the selected plan (asks first).
    StartRun(ferry_api::types::RunMode),
    /// A cleanup that goes on past errors.
    ForceCleanup,
    /// Cancels the run on screen or the selected plan's run (asks first).
    CancelRun,
    /// Answers the prompt a run waits on.
    Ack,
    /// Opens the selected plan's run.
    OpenRun,
    /// Acknowledges the home screen's selected alarm.
    AckAlarm,
    /// The demo attack on the VM of the detail pane (admin, demo sites).
    Attack,
    /// Writes a run out as JSON and Markdown.
    Export,
    /// A second passed: ages and the NOC rotation move on.
    Tick,
}

impl Action {
    /// Whether this action changes a site's objects or opens an editor to:
    /// what read-only mode refuses.
    pub(super) fn edits(&self) -> bool {
        matches!(
            self,
            Self::Save
                | Self::New
                | Self::Delete
                | Self::Toggle
                | Self::Raise
                | Self::Lower
                | Self::Depends
                | Self::TogglePower
                | Self::Timeout
                | Self::IpMode
                | Self::Callouts
                | Self::PlanCallouts
                | Self::PickGroups
                | Self::Rename
                | Self::Open
        )
    }
}
