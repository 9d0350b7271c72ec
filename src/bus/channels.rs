//! Redis channel names for bus channels, under the key prefix (shared by
//! the single-server and the cluster transport).

use super::Channel;
use crate::domain::RoomId;

/// Channel names under the key prefix.
pub fn channel_name(prefix: &str, channel: Channel) -> String {
    match channel {
        Channel::Room(room) => format!("{prefix}room:{}", room.0),
        Channel::Control => format!("{prefix}control"),
    }
}

pub fn parse_channel(prefix: &str, name: &str) -> Option<Channel> {
    let rest = name.strip_prefix(prefix)?;
    if rest == "control" {
        return Some(Channel::Control);
    }
    rest.strip_prefix("room:")?.parse().ok().map(|id| Channel::Room(RoomId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let p = "sb:";
        assert_eq!(channel_name(p, Channel::Room(RoomId(42))), "sb:room:42");
        assert_eq!(parse_channel(p, "sb:room:42"), Some(Channel::Room(RoomId(42))));
        assert_eq!(parse_channel(p, "sb:control"), Some(Channel::Control));
        assert_eq!(parse_channel(p, "other:room:42"), None);
        assert_eq!(parse_channel(p, "sb:room:x"), None);
    }
}
