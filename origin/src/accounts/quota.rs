//! The day quota's clock, pure: when an upload refused for today's quota will fit, so the
//! refusal can say when to come back (`Retry-After`) instead of "later".

use crate::meta::Millis;

/// The day quota's window: a rolling 24 hours.
pub const DAY: Millis = 24 * 3600 * 1000;

/// The first moment (Unix ms, `now` or later) at which `size` more bytes fit a day quota of
/// `limit`, given the account's `uploads` of the window (when created and how large, oldest
/// first; an upload counts while `created_at >= moment - DAY`). `None` when it never fits:
/// `size` alone is over the quota.
pub fn room_at(uploads: &[(Millis, u64)], size: u64, limit: u64, now: Millis) -> Option<Millis> {
    if size > limit {
        return None;
    }
    let inside = uploads.iter().filter(|(at, _)| *at >= now - DAY);
    let mut used: u64 = inside.clone().map(|(_, bytes)| bytes).sum();
    if used.saturating_add(size) <= limit {
        return Some(now);
    }
    for (at, bytes) in inside {
        // It leaves the window the millisecond after `at + DAY`.
        used -= bytes;
        if used.saturating_add(size) <= limit {
            return Some(at + DAY + 1);
        }
    }
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_comes_when_enough_of_the_oldest_uploads_leave_the_window() {
        let now = 10 * DAY;
        let uploads = [(now - DAY - 5, 50), (now - 3_000, 40), (now - 2_000, 30), (now - 1_000, 20)];
        // (size, limit, expected): the first is outside the window already.
        let table = [
            (10, 100, Some(now)),                    // 90 used: fits now
            (20, 100, Some(now - 3_000 + DAY + 1)),  // 110: the 40 must leave
            (60, 100, Some(now - 2_000 + DAY + 1)),  // 150: the 40 and the 30
            (100, 100, Some(now - 1_000 + DAY + 1)), // everything in the window must leave
            (101, 100, None),                        // never
        ];
        for (size, limit, expected) in table {
            assert_eq!(room_at(&uploads, size, limit, now), expected, "{size} of {limit}");
        }
        assert_eq!(room_at(&[], 100, 100, now), Some(now));
    }

    #[test]
    fn an_upload_exactly_a_day_old_still_counts() {
        let now = 5 * DAY;
        assert_eq!(room_at(&[(now - DAY, 10)], 1, 10, now), Some(now + 1));
        assert_eq!(room_at(&[(now - DAY - 1, 10)], 1, 10, now), Some(now));
    }
}
