//! Fault injection for the supervision tests, answered only with
//! `SWITCHBOARD_TEST_HOOKS=true`: frames that make this session, a joined
//! room's actor or a background task panic. The session asks `parse` once
//! per frame and leaves everything else to the real protocol.

use actix::{Actor, Addr, Handler, Message};

use crate::chat::room::Room;
use crate::domain::RoomName;
use crate::supervisor::Task;

#[derive(Debug, PartialEq)]
pub enum Hook {
    /// `{"type":"__panic"}`: the session panics.
    PanicSession,
    /// `{"type":"__kill_task","task":"…"}`: the task panics at its next checkpoint.
    KillTask(Task),
    /// `{"type":"__panic_room","room":"…"}`: that joined room's actor panics.
    PanicRoom(RoomName),
    /// A hook frame naming no such task or room: swallowed.
    Nothing,
}

pub fn parse(text: &str) -> Option<Hook> {
    if text == r#"{"type":"__panic"}"# {
        return Some(Hook::PanicSession);
    }
    if let Some(task) = text.strip_prefix(r#"{"type":"__kill_task","task":""#).and_then(|r| r.strip_suffix(r#""}"#)) {
        return Some(Task::parse(task).map_or(Hook::Nothing, Hook::KillTask));
    }
    if let Some(room) = text.strip_prefix(r#"{"type":"__panic_room","room":""#).and_then(|r| r.strip_suffix(r#""}"#)) {
        return Some(RoomName::parse(room).map_or(Hook::Nothing, Hook::PanicRoom));
    }
    None
}

/// Runs a hook; `joined` finds a room this session has joined.
pub fn run(hook: Hook, joined: impl Fn(&RoomName) -> Option<Addr<Room>>) {
    match hook {
        Hook::PanicSession => panic!("test hook: a session panics on purpose"),
        Hook::KillTask(task) => crate::supervisor::kill(task),
        Hook::PanicRoom(name) => {
            if let Some(addr) = joined(&name) {
                addr.do_send(PanicRoom);
            }
        }
        Hook::Nothing => {}
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct PanicRoom;

impl Handler<PanicRoom> for Room {
    type Result = ();

    fn handle(&mut self, _: PanicRoom, _: &mut <Room as Actor>::Context) {
        panic!("test hook: a room panics on purpose");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_parse_and_everything_else_is_left_alone() {
        assert_eq!(parse(r#"{"type":"__panic"}"#), Some(Hook::PanicSession));
        assert_eq!(parse(r#"{"type":"__kill_task","task":"writer"}"#), Some(Hook::KillTask(Task::Writer)));
        assert_eq!(parse(r#"{"type":"__kill_task","task":"nope"}"#), Some(Hook::Nothing));
        assert!(matches!(parse(r#"{"type":"__panic_room","room":"lobby"}"#), Some(Hook::PanicRoom(_))));
        assert_eq!(parse(r#"{"type":"ping"}"#), None);
    }
}
