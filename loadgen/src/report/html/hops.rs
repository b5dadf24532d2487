//! The delivery part of the HTML report's alert timeline: a mark on an alert's row for each notification
//! received about it, and the table of each expected alert's hops.

use std::fmt::Write as _;

use super::{clock, esc, Chart};
use crate::alerts::delivery::Delivery;
use crate::alerts::notify::Status;

/// Colours of the notification marks.
const NOTIFIED_FIRING: &str = "#6a1b9a";
const NOTIFIED_RESOLVED: &str = "#2e7d32";

/// A mark at each arrival of a notification about `alert`, on the row at `y`.
pub(super) fn marks(h: &mut String, chart: &Chart, y: f64, alert: &str, d: &Delivery) {
    for n in &d.notifications {
        let Some(a) = n.alerts.iter().find(|a| a.alert == alert) else {
            continue;
        };
        let (colour, status) = match a.status {
            Status::Firing => (NOTIFIED_FIRING, "firing"),
            Status::Resolved => (NOTIFIED_RESOLVED, "resolved"),
        };
        let x = chart.x(n.at_s);
        let _ = write!(
            h,
            "<path data-notified=\"{status}\" data-alert=\"{}\" d=\"M{x:.1} {:.1} l-5 -7 h10 z\" fill=\"{colour}\">\
             <title>{} notified {status} at {} (receiver {})</title></path>",
            esc(alert),
            y + 9.0,
            esc(alert),
            clock(n.at_s),
            esc(&n.receiver)
        );
    }
}

/// The legend entries of the marks.
pub(super) fn legend(h: &mut String) {
    let _ = write!(
        h,
        "<span><i style=\"background:{NOTIFIED_FIRING}\"></i>notified firing</span>\
         <span><i style=\"background:{NOTIFIED_RESOLVED}\"></i>notified resolved</span>"
    );
}

/// The hops of each expected alert, in seconds from its fault's start.
pub(super) fn table(h: &mut String, d: &Delivery) {
    let _ = write!(
        h,
        "<h3>Delivery</h3><p class=\"muted\">Alertmanager {} → webhook {}; seconds from the fault's start. \
         {} notifications received{}.</p>",
        esc(&d.alertmanager),
        esc(&d.webhook),
        d.notifications.len(),
        if d.rejected > 0 {
            format!(", {} bodies refused", d.rejected)
        } else {
            String::new()
        }
    );
    if d.hops.is_empty() {
        return;
    }
    h.push_str("<table id=\"hops\"><tr><th>phase</th><th>alert</th>");
    for (name, _) in d.hops[0].marks() {
        let _ = write!(h, "<th>{name}</th>");
    }
    h.push_str("</tr>");
    for hop in &d.hops {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(&hop.phase), esc(&hop.alert));
        for (name, t) in hop.marks() {
            let _ = write!(
                h,
                "<td data-hop=\"{name}\">{}</td>",
                t.map_or("–".to_owned(), |t| format!("{t:.1}s"))
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}
