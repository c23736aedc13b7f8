//! The browser console: server-rendered page shells (Event history, Insights, Queries, Rules,
//! Trails, Settings) whose small script and style sheet are embedded in the binary, and the
//! two console endpoints a page cannot do with the JSON API: downloads of a whole filtered
//! result (CSV or JSON, streamed) and a live stream of new events (Server-Sent Events).
//!
//! A page's view lives in its URL: `start` and `end` (epoch seconds, `now`, `now-<n><unit>`
//! with unit `s`, `m`, `h`, `d` or `w`, an ISO 8601 time, or `all` for no start), and one
//! `f=<AttributeKey>:<value>` per filter. The download and live endpoints take the same
//! parameters, plus the session's CSRF token as `csrf` (they are plain GETs, so that a link
//! downloads and `EventSource` connects).
//!
//! The Queries page runs CloudTrail Lake SQL through the JSON API; its URL holds the event
//! data store (`store`), the statement (`sql`) and, once run, the query's ID (`query`), so
//! that a link shows the same results again (or runs the statement again once the results
//! are gone).
//!
//! The Insights page lists the account's Insights events (LookupEvents with `EventCategory`
//! `insight`), one row per incident (the Start and End records that share a
//! `sharedEventID`), and charts an incident's per-minute rate with CountEvents. Its URL holds
//! the time range (`range`: `24h`, `7d`, `30d` or `90d`), the text filter (`q`) and the
//! incident shown (`insight`, its `sharedEventID`).
//!
//! The Rules page lists the account's rules (ListRules: the default pack, the rules folder,
//! the account's own) with their hits, the rules-folder files Cairn refused, the recent
//! alerts (ListAlerts, newest first, refreshed every few seconds while the tab is visible),
//! alerts per rule, the alert targets' delivery status (GetAlertTargets), and a form for
//! event-pattern rules (PutRule, TestRule). Its URL holds the rule whose alerts are shown
//! (`rule`). The page offers only what the caller's policies allow: the shell says whether
//! they allow PutRule, EnableRule and DisableRule, and DeleteRule.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use cairn_store::{Query, Store};

use crate::AppState;
use crate::audit::{self, Record, TlsDetails};
use crate::auth::{Caller, Origin, authorize, decide};
use crate::error::ApiError;
use crate::input::Input;
use crate::lookup::{Lookup, event_json};

/// The console's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(console_root))
        .route("/console/", get(console_root))
        .route("/console/events", get(events_page))
        .route("/console/insights", get(insights_page))
        .route("/console/queries", get(queries_page))
        .route("/console/rules", get(rules_page))
        .route("/console/trails", get(trails_page))
        .route("/console/settings", get(settings_page))
        .route("/console/assets/{name}", get(asset))
        .route("/v1/console/export", get(export))
        .route("/v1/console/live", get(live))
}

// ---------------------------------------------------------------------------------------
// Assets

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/console.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// Each asset's content hash, for its URL and ETag.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(a.body.as_bytes())))
        .collect()
});

fn asset_url(name: &str) -> String {
    let i = ASSETS.iter().position(|a| a.name == name).unwrap_or(0);
    format!("/console/assets/{name}?v={}", HASHES[i])
}

/// `GET /console/assets/<name>`: cached for a year when asked for by the URL that carries
/// its hash, else revalidated by ETag.
async fn asset(Path(name): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (a, hash) = (&ASSETS[i], &HASHES[i]);
    let etag = format!("\"{hash}\"");
    let current = query_pairs(uri.query().unwrap_or_default())
        .iter()
        .any(|(k, v)| k == "v" && v == hash);
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

// ---------------------------------------------------------------------------------------
// Pages

#[derive(Clone, Copy, PartialEq)]
enum Page {
    Events,
    Insights,
    Queries,
    Rules,
    Trails,
    Settings,
}

/// Lookup attributes the filter offers: (key, label).
pub const ATTRIBUTES: [(&str, &str); 11] = [
    ("EventName", "Event name"),
    ("Username", "User name"),
    ("ResourceType", "Resource type"),
    ("ResourceName", "Resource name"),
    ("EventSource", "Event source"),
    ("AccessKeyId", "AWS access key"),
    ("EventId", "Event ID"),
    ("ReadOnly", "Read-only"),
    ("AwsRegion", "AWS region"),
    ("ErrorCode", "Error code"),
    ("SourceIpAddress", "Source IP address"),
];

/// The columns of the event table and of the CSV download: (id, label, shown by default).
pub const COLUMNS: [(&str, &str, bool); 12] = [
    ("EventTime", "Event time", true),
    ("Username", "User name", true),
    ("EventName", "Event name", true),
    ("ResourceType", "Resource type", true),
    ("ResourceName", "Resource name", true),
    ("EventSource", "Event source", true),
    ("AccessKeyId", "AWS access key", false),
    ("AwsRegion", "AWS region", true),
    ("ErrorCode", "Error code", true),
    ("SourceIpAddress", "Source IP address", true),
    ("ReadOnly", "Read-only", false),
    ("EventId", "Event ID", false),
];

/// The time range presets: (id, label, start).
const PRESETS: [(&str, &str, &str); 7] = [
    ("15m", "Last 15 minutes", "now-15m"),
    ("1h", "Last hour", "now-1h"),
    ("24h", "Last 24 hours", "now-24h"),
    ("7d", "Last 7 days", "now-7d"),
    ("30d", "Last 30 days", "now-30d"),
    ("90d", "Last 90 days", "now-90d"),
    ("all", "All time", "all"),
];

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /console`.
async fn console_root() -> Response {
    see_other("/console/events")
}

async fn events_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Events)
}

async fn insights_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Insights)
}

async fn queries_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Queries)
}

async fn rules_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Rules)
}

async fn trails_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Trails)
}

async fn settings_page(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    page(&state, &uri, &headers, &extensions, Page::Settings)
}

fn page(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
    which: Page,
) -> Response {
    let origin = Origin::of(headers, extensions);
    let Some((caller, csrf)) = state.console.page_caller(headers, &origin, &state.region) else {
        let here = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let next = percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC);
        return see_other(&format!("/signin?next={next}"));
    };
    // The nav shows Settings to those who may list the account's users.
    let admin = decide(&caller, "iam:ListUsers", "*") == cairn_policy::Decision::Allow;
    let (title, main) = match which {
        Page::Events => ("Event history", events_main()),
        Page::Insights => ("Insights", insights_main()),
        Page::Queries => ("Queries", queries_main()),
        Page::Rules => {
            let allowed =
                |action: &str| decide(&caller, action, "*") == cairn_policy::Decision::Allow;
            let may = RulePermissions {
                put: allowed("cloudtrail:PutRule"),
                toggle: allowed("cloudtrail:EnableRule") && allowed("cloudtrail:DisableRule"),
                delete: allowed("cloudtrail:DeleteRule"),
            };
            ("Rules", rules_main(may))
        }
        Page::Trails => ("Trails", trails_main()),
        Page::Settings => ("Settings", settings_main(admin)),
    };
    let body = shell(&caller, &csrf, which, admin, title, &main);
    let mut resp = (StatusCode::OK, body).into_response();
    page_headers(resp.headers_mut());
    resp
}

fn page_headers(h: &mut HeaderMap) {
    crate::console::html_headers(
        h,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
}

fn shell(caller: &Caller, csrf: &str, which: Page, admin: bool, title: &str, main: &str) -> String {
    let mut nav = String::new();
    let mut links = vec![
        (Page::Events, "/console/events", "Event history"),
        (Page::Insights, "/console/insights", "Insights"),
        (Page::Queries, "/console/queries", "Queries"),
        (Page::Rules, "/console/rules", "Rules"),
        (Page::Trails, "/console/trails", "Trails"),
    ];
    if admin {
        links.push((Page::Settings, "/console/settings", "Settings"));
    }
    for (p, href, label) in links {
        let current = if p == which {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!("<li><a href=\"{href}\"{current}>{label}</a></li>"));
    }
    let page = match which {
        Page::Events => "events",
        Page::Insights => "insights",
        Page::Queries => "queries",
        Page::Rules => "rules",
        Page::Trails => "trails",
        Page::Settings => "settings",
    };
    let p = &caller.principal;
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} - Cairn</title>\
<meta name=\"cairn-csrf\" content=\"{csrf}\">\
<link rel=\"icon\" href=\"{icon}\" type=\"image/svg+xml\">\
<link rel=\"stylesheet\" href=\"{css}\">\
<script src=\"{js}\" defer></script></head>\
<body data-page=\"{page}\" data-account=\"{account}\" data-user=\"{user}\">\
<a class=\"skip\" href=\"#main\">Skip to content</a>\
<header class=\"top\"><a class=\"brand\" href=\"/console/events\">Cairn</a>\
<nav aria-label=\"Main\"><ul>{nav}</ul></nav>\
<div class=\"who\"><span class=\"whoami\" data-testid=\"whoami\" title=\"Signed in to account {account}\">{arn}</span>\
<form method=\"post\" action=\"/signout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" class=\"btn subtle\" data-testid=\"signout\">Sign out</button></form></div></header>\
<main id=\"main\" tabindex=\"-1\">{main}</main></body></html>",
        csrf = esc(csrf),
        css = asset_url("console.css"),
        icon = asset_url("favicon.svg"),
        js = asset_url("console.js"),
        account = esc(&p.account_id),
        user = esc(&p.user_name),
        arn = esc(&p.arn),
    )
}

fn events_main() -> String {
    let options: String = ATTRIBUTES
        .iter()
        .map(|(k, l)| format!("<option value=\"{k}\">{l}</option>"))
        .collect();
    let presets: String = PRESETS
        .iter()
        .map(|(id, label, _)| {
            format!("<button type=\"button\" class=\"preset\" data-testid=\"preset-{id}\" data-preset=\"{id}\">{label}</button>")
        })
        .collect();
    let columns: String = COLUMNS
        .iter()
        .map(|(id, label, on)| {
            let checked = if *on { " checked" } else { "" };
            format!("<label class=\"check\"><input type=\"checkbox\" data-testid=\"column-toggle-{id}\" data-col=\"{id}\"{checked}> {label}</label>")
        })
        .collect();
    format!(
        "<div class=\"page-head\"><h1>Event history</h1>\
<div class=\"live\"><span class=\"live-status\" data-testid=\"live-status\" aria-live=\"polite\">Connecting</span>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"live-toggle\" aria-pressed=\"false\">Pause</button></div></div>\
<div class=\"toolbar\">\
<form class=\"filter-form\" id=\"filter-form\" role=\"search\" aria-label=\"Filter events\">\
<label class=\"sr-only\" for=\"filter-attribute\">Lookup attribute</label>\
<select id=\"filter-attribute\" data-testid=\"filter-attribute\">{options}</select>\
<label class=\"sr-only\" for=\"filter-value\">Value</label>\
<input id=\"filter-value\" data-testid=\"filter-value\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" placeholder=\"Enter a value\">\
<button type=\"submit\" class=\"btn\" data-testid=\"filter-add\">Add filter</button></form>\
<div class=\"pop-wrap\"><button type=\"button\" class=\"btn subtle range-button\" data-testid=\"time-range\" aria-expanded=\"false\" aria-controls=\"range-pop\" aria-haspopup=\"true\">Last 24 hours</button>\
<div class=\"popover range-pop\" id=\"range-pop\" hidden><div class=\"presets\" role=\"group\" aria-label=\"Relative ranges\">{presets}</div>\
<form class=\"absolute\" id=\"range-form\"><fieldset><legend>Absolute range (UTC)</legend>\
<label for=\"time-start\">Start (UTC)</label><input id=\"time-start\" type=\"datetime-local\" step=\"1\" data-testid=\"time-start\">\
<label for=\"time-end\">End (UTC)</label><input id=\"time-end\" type=\"datetime-local\" step=\"1\" data-testid=\"time-end\">\
<p class=\"hint\">Leave End empty for \"now\".</p>\
<button type=\"submit\" class=\"btn\" data-testid=\"time-apply\">Apply</button></fieldset></form></div></div>\
<div class=\"pop-wrap\"><button type=\"button\" class=\"btn subtle\" data-testid=\"columns-button\" aria-expanded=\"false\" aria-controls=\"columns-pop\" aria-haspopup=\"true\">Columns</button>\
<div class=\"popover columns-pop\" id=\"columns-pop\" hidden><fieldset><legend>Show columns</legend>{columns}</fieldset></div></div>\
<div class=\"downloads\"><a class=\"btn subtle\" data-testid=\"download-csv\" href=\"/v1/console/export?format=csv\" download>Download CSV</a>\
<a class=\"btn subtle\" data-testid=\"download-json\" href=\"/v1/console/export?format=json\" download>Download JSON</a></div>\
</div>\
<ul class=\"chips\" id=\"chips\" aria-label=\"Active filters\"></ul>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<section class=\"histogram\" aria-label=\"Events over time\">\
<svg data-testid=\"histogram\" id=\"histogram\" role=\"img\" aria-label=\"Event counts over the time range\" preserveAspectRatio=\"none\"></svg>\
<p class=\"histogram-note\" id=\"histogram-note\"></p></section>\
<div class=\"table-wrap\"><table class=\"events\" data-testid=\"events-table\" id=\"events-table\">\
<caption class=\"sr-only\">Events, newest first. Press Enter on a row for its details.</caption>\
<thead><tr></tr></thead><tbody></tbody></table></div>\
<p class=\"empty\" data-testid=\"no-events\" hidden>No events match these filters in this time range.</p>\
<p class=\"status\" id=\"status\" aria-live=\"polite\"></p>\
<button type=\"button\" class=\"btn subtle load-more\" data-testid=\"load-more\" hidden>Load more events</button>\
<aside class=\"details\" data-testid=\"event-details\" id=\"event-details\" role=\"dialog\" aria-labelledby=\"details-title\" hidden tabindex=\"-1\">\
<div class=\"details-head\"><h2 id=\"details-title\">Event details</h2>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"details-close\" aria-label=\"Close event details\">Close</button></div>\
<div class=\"details-body\" id=\"details-body\"></div></aside>"
    )
}

/// The time ranges of the Insights page: (id, label). The last is the default: Insights
/// found in imported history can be old.
pub const INSIGHT_RANGES: [(&str, &str); 4] = [
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
];

fn insights_main() -> String {
    let ranges: String = INSIGHT_RANGES
        .iter()
        .map(|(id, label)| {
            format!(
                "<input type=\"radio\" name=\"range\" id=\"range-{id}\" value=\"{id}\" data-testid=\"insights-range-{id}\">\
<label for=\"range-{id}\">{label}</label>"
            )
        })
        .collect();
    format!(
        "<div class=\"page-head\"><h1>Insights</h1>\
<p class=\"lead inline\">Unusual rates of API calls and errors, each against its API's baseline.</p></div>\
<div class=\"toolbar\">\
<fieldset class=\"segmented\" data-testid=\"insights-range\"><legend>Last</legend>{ranges}</fieldset>\
<form class=\"filter-form\" id=\"insights-filter-form\" role=\"search\" aria-label=\"Filter insights\">\
<label class=\"sr-only\" for=\"insights-filter\">Event source or event name contains</label>\
<input id=\"insights-filter\" data-testid=\"insights-filter\" type=\"search\" autocomplete=\"off\" spellcheck=\"false\" placeholder=\"Filter by event source or name\"></form>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"insights-refresh\">Refresh</button></div>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<div class=\"table-wrap\"><table class=\"list insights\" data-testid=\"insights-table\" id=\"insights-table\">\
<caption class=\"sr-only\">Insights, newest first, one row per incident. Press Enter on a row for its chart and details.</caption>\
<thead><tr><th scope=\"col\">Start time</th><th scope=\"col\">End time</th><th scope=\"col\">Event source</th>\
<th scope=\"col\">Event name</th><th scope=\"col\">Type</th>\
<th scope=\"col\" class=\"num\">Baseline <span class=\"unit\">per minute</span></th>\
<th scope=\"col\" class=\"num\">Insight <span class=\"unit\">per minute</span></th>\
<th scope=\"col\" class=\"num\">Duration</th></tr></thead><tbody></tbody></table></div>\
<div class=\"empty-state\" data-testid=\"no-insights\" hidden><p><strong>No Insights events in this time range.</strong></p>\
<p>Insights are turned on per trail or event data store with PutInsightSelectors, for example:</p>\
<code>aws cloudtrail put-insight-selectors --trail-name my-trail --insight-selectors '[{{\"InsightType\": \"ApiCallRateInsight\"}}, {{\"InsightType\": \"ApiErrorRateInsight\"}}]'</code>\
<p>Each incident then shows here, from its Start to its End event, when an API's rate of calls or errors departs from its baseline.</p></div>\
<p class=\"empty\" data-testid=\"no-matches\" hidden>No insight in this time range matches the filter.</p>\
<p class=\"status\" id=\"status\" aria-live=\"polite\"></p>\
<section class=\"card insight-detail\" data-testid=\"insight-detail\" id=\"insight-detail\" aria-labelledby=\"insight-title\" tabindex=\"-1\" hidden>\
<div class=\"insight-head\"><h2 id=\"insight-title\">Insight</h2>\
<a class=\"btn subtle small\" data-testid=\"insight-events-link\" id=\"insight-events-link\" href=\"/console/events\">View the events behind it</a>\
<button type=\"button\" class=\"btn subtle small\" data-testid=\"insight-close\" aria-label=\"Close the insight\">Close</button></div>\
<p class=\"insight-sub\" id=\"insight-sub\"></p>\
<figure class=\"insight-chart\">\
<svg data-testid=\"insight-chart\" id=\"insight-chart\" role=\"img\" aria-describedby=\"chart-summary\" tabindex=\"0\"></svg>\
<figcaption id=\"chart-summary\" data-testid=\"chart-summary\"></figcaption>\
<p class=\"chart-readout\" id=\"chart-readout\" data-testid=\"chart-readout\" aria-live=\"polite\"></p></figure>\
<div class=\"insight-grid\">\
<section aria-labelledby=\"insight-stats-title\"><h3 id=\"insight-stats-title\">Statistics</h3>\
<dl class=\"summary\" data-testid=\"insight-stats\" id=\"insight-stats\"></dl></section>\
<section aria-labelledby=\"insight-attr-title\"><h3 id=\"insight-attr-title\">Attributions</h3>\
<div data-testid=\"insight-attributions\" id=\"insight-attributions\"></div></section></div>\
<h3>Records</h3><div class=\"insight-records\" id=\"insight-records\"></div></section>"
    )
}

/// The sample queries of the Queries page: (id, label, statement). The page puts in the
/// event data store's ID for `{store}`, the start of the last 7 days for `{since}` and the
/// signed-in user's name for `{user}`.
pub const SAMPLES: [(&str, &str, &str); 4] = [
    (
        "top-events",
        "Top event names",
        "SELECT eventname, count(*) AS events\nFROM {store}\nWHERE eventtime > '{since}'\nGROUP BY eventname\nORDER BY events DESC\nLIMIT 10",
    ),
    (
        "failed-by-ip",
        "Failed calls by source IP",
        "SELECT sourceipaddress, errorcode, count(*) AS calls\nFROM {store}\nWHERE errorcode IS NOT NULL\n  AND eventtime > '{since}'\nGROUP BY sourceipaddress, errorcode\nORDER BY calls DESC\nLIMIT 50",
    ),
    (
        "console-signins",
        "Console sign-ins",
        "SELECT eventtime, useridentity.username, sourceipaddress,\n  element_at(responseelements, 'ConsoleLogin') AS outcome, errormessage\nFROM {store}\nWHERE eventname = 'ConsoleLogin'\n  AND eventtime > '{since}'\nORDER BY eventtime DESC\nLIMIT 100",
    ),
    (
        "user-activity",
        "One user's activity",
        "SELECT eventtime, eventsource, eventname, awsregion, sourceipaddress, errorcode\nFROM {store}\nWHERE useridentity.username = '{user}'\n  AND eventtime > '{since}'\nORDER BY eventtime DESC\nLIMIT 100",
    ),
];

fn queries_main() -> String {
    let samples: String = SAMPLES
        .iter()
        .map(|(id, label, sql)| {
            format!(
                "<li><button type=\"button\" class=\"btn subtle small sample\" data-testid=\"sample-{id}\" data-sql=\"{sql}\">{label}</button></li>",
                sql = esc(sql),
                label = esc(label),
            )
        })
        .collect();
    format!(
        "<div class=\"page-head\"><h1>Queries</h1>\
<p class=\"lead inline\">SQL over an event data store, as in CloudTrail Lake.</p></div>\
<div class=\"query-layout\">\
<section class=\"card editor\" aria-labelledby=\"editor-title\"><h2 id=\"editor-title\" class=\"sr-only\">Query editor</h2>\
<div class=\"store-row\"><label for=\"store\">Event data store</label>\
<select id=\"store\" data-testid=\"store-select\" disabled><option value=\"\">Loading...</option></select>\
<span class=\"store-id\">ID <code data-testid=\"store-id\" id=\"store-id\"></code>\
<button type=\"button\" class=\"btn subtle small\" data-testid=\"store-id-copy\" id=\"store-id-copy\" aria-label=\"Copy the store ID\" disabled>Copy</button></span>\
<span class=\"tag\" data-testid=\"store-status\" id=\"store-status\" hidden></span></div>\
<form id=\"query-form\" class=\"query-form\">\
<label for=\"sql\">SQL statement</label>\
<textarea id=\"sql\" name=\"sql\" data-testid=\"sql\" rows=\"8\" spellcheck=\"false\" autocapitalize=\"off\" autocomplete=\"off\" maxlength=\"10000\" aria-describedby=\"sql-hint\"></textarea>\
<p class=\"hint\" id=\"sql-hint\">The table is the event data store's ID; column names are CloudTrail Lake's (eventtime, eventname, useridentity.username, sourceipaddress...). Times compare as '2024-01-31 23:59:59' (UTC). Ctrl+Enter (\u{2318}+Enter on a Mac) runs the query.</p>\
<div class=\"query-actions\"><button type=\"submit\" class=\"btn\" data-testid=\"run\">Run query</button>\
<button type=\"button\" class=\"btn danger\" data-testid=\"cancel\" hidden>Cancel query</button>\
<span class=\"query-state\" data-testid=\"query-state\" role=\"status\" aria-live=\"polite\"></span>\
<span class=\"elapsed\" data-testid=\"query-elapsed\" aria-hidden=\"true\"></span></div></form>\
<div class=\"samples\"><h3 id=\"samples-title\">Sample queries</h3>\
<ul class=\"sample-list\" aria-labelledby=\"samples-title\">{samples}</ul></div></section>\
<section class=\"card recent\" aria-labelledby=\"recent-title\"><div class=\"recent-head\"><h2 id=\"recent-title\">Recent queries</h2>\
<button type=\"button\" class=\"btn subtle small\" data-testid=\"recent-refresh\" aria-label=\"Refresh recent queries\">Refresh</button></div>\
<p class=\"hint\">This event data store's queries of the last 7 days.</p>\
<ol class=\"recent-list\" data-testid=\"recent-queries\" id=\"recent-queries\"></ol>\
<p class=\"empty\" data-testid=\"no-recent\" hidden>No queries yet.</p></section></div>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<section class=\"results\" aria-labelledby=\"results-title\" data-testid=\"results\" hidden>\
<div class=\"results-head\"><h2 id=\"results-title\">Results</h2>\
<dl class=\"stats\" data-testid=\"query-stats\" id=\"query-stats\"></dl>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"download-csv\" disabled>Download CSV</button></div>\
<div class=\"table-wrap\" tabindex=\"0\" role=\"region\" aria-labelledby=\"results-title\"><table class=\"list results-table\" data-testid=\"results-table\" id=\"results-table\">\
<caption class=\"sr-only\">Query results, columns in the order of the statement.</caption>\
<thead><tr></tr></thead><tbody></tbody></table></div>\
<p class=\"empty\" data-testid=\"no-results\" hidden>The query returned no rows.</p>\
<button type=\"button\" class=\"btn subtle load-more\" data-testid=\"load-more\" hidden>Load more rows</button></section>\
<p class=\"status\" id=\"status\" aria-live=\"polite\"></p>"
    )
}

/// What the caller's policies allow on the Rules page (reading needs ListRules, ListAlerts
/// and GetAlertTargets, which the API checks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RulePermissions {
    /// PutRule: the form.
    pub put: bool,
    /// EnableRule and DisableRule: the toggles.
    pub toggle: bool,
    /// DeleteRule: the Delete buttons.
    pub delete: bool,
}

/// The severities of rules, lowest first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

fn rules_main(may: RulePermissions) -> String {
    let severities: String = SEVERITIES
        .iter()
        .map(|s| {
            let selected = if *s == "medium" { " selected" } else { "" };
            format!("<option value=\"{s}\"{selected}>{s}</option>")
        })
        .collect();
    let form = if may.put {
        format!(
            "<section class=\"card rule-form-card\" aria-labelledby=\"rule-form-title\" id=\"rule-form-card\">\
<h2 id=\"rule-form-title\" tabindex=\"-1\">Add a rule</h2>\
<p class=\"hint\">An EventBridge event pattern, matched against each record in the envelope EventBridge gives CloudTrail events (the record is <code>detail</code>; <code>source</code> is <code>aws.</code> and the service, as <code>aws.iam</code>).</p>\
<form id=\"rule-form\" class=\"rule-form\" data-testid=\"rule-form\" novalidate>\
<div class=\"form-grid\">\
<div class=\"field\"><label for=\"rule-name\">Name</label>\
<input id=\"rule-name\" name=\"name\" data-testid=\"rule-name\" type=\"text\" required maxlength=\"64\" autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"rule-name-hint\">\
<p class=\"hint\" id=\"rule-name-hint\">Letters, digits, '.', '_' and '-' (cairn- and sigma- are taken).</p></div>\
<div class=\"field\"><label for=\"rule-severity\">Severity</label>\
<select id=\"rule-severity\" name=\"severity\" data-testid=\"rule-severity\">{severities}</select></div>\
<div class=\"field wide\"><label for=\"rule-description\">Description</label>\
<input id=\"rule-description\" name=\"description\" data-testid=\"rule-description\" type=\"text\" maxlength=\"1024\" autocomplete=\"off\"></div>\
<div class=\"field wide\"><label for=\"rule-pattern\">Event pattern (JSON)</label>\
<textarea id=\"rule-pattern\" name=\"pattern\" data-testid=\"rule-pattern\" rows=\"7\" spellcheck=\"false\" autocapitalize=\"off\" autocomplete=\"off\" aria-describedby=\"rule-pattern-hint\"></textarea>\
<p class=\"hint\" id=\"rule-pattern-hint\">For example <code>{{\"source\": [\"aws.iam\"], \"detail\": {{\"eventName\": [\"DeleteUser\"]}}}}</code>. Ctrl+Enter (\u{2318}+Enter on a Mac) saves the rule.</p></div>\
<fieldset class=\"field wide threshold\" aria-describedby=\"rule-threshold-hint\"><legend>Threshold (optional)</legend>\
<div class=\"threshold-row\">\
<div><label for=\"rule-count\">Count</label><input id=\"rule-count\" name=\"count\" data-testid=\"rule-count\" type=\"number\" min=\"1\" step=\"1\" inputmode=\"numeric\"></div>\
<div><label for=\"rule-window\">Window (seconds)</label><input id=\"rule-window\" name=\"window\" data-testid=\"rule-window\" type=\"number\" min=\"1\" max=\"86400\" step=\"1\" inputmode=\"numeric\"></div>\
<div class=\"grow\"><label for=\"rule-group-by\">Group by (paths, comma-separated)</label><input id=\"rule-group-by\" name=\"groupBy\" data-testid=\"rule-group-by\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" placeholder=\"detail.userIdentity.arn, detail.sourceIPAddress\"></div></div>\
<p class=\"hint\" id=\"rule-threshold-hint\">An alert when Count matching events come within the window, for each value of the group-by paths. Empty: every matching event is an alert.</p></fieldset>\
</div>\
<div class=\"error\" data-testid=\"rule-form-error\" id=\"rule-form-error\" role=\"alert\" hidden></div>\
<div class=\"form-actions\"><button type=\"submit\" class=\"btn\" data-testid=\"rule-save\">Add rule</button>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"rule-test\">Test on the last 24 hours</button>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"rule-edit-cancel\" hidden>Cancel editing</button>\
<span class=\"form-status\" data-testid=\"rule-form-status\" id=\"rule-form-status\" role=\"status\"></span></div>\
<div class=\"test-result\" data-testid=\"rule-test-result\" id=\"rule-test-result\" hidden></div>\
</form></section>"
        )
    } else {
        "<p class=\"hint\" data-testid=\"rule-form-denied\">Your policies do not allow adding rules (cloudtrail:PutRule).</p>"
            .to_owned()
    };
    format!(
        "<div class=\"rules-page\" id=\"rules-page\" data-can-put=\"{put}\" data-can-toggle=\"{toggle}\" data-can-delete=\"{delete}\">\
<div class=\"page-head\"><h1>Rules</h1>\
<p class=\"lead inline\">Rules run on each event as Cairn stores it; an alert shows here within a second.</p>\
<div class=\"refresh\"><label class=\"check\"><input type=\"checkbox\" id=\"auto-refresh\" data-testid=\"auto-refresh\" checked> Auto-refresh</label>\
<button type=\"button\" class=\"btn subtle\" data-testid=\"rules-refresh\">Refresh</button>\
<span class=\"updated\" data-testid=\"updated\" id=\"updated\"></span></div></div>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<div class=\"notice\" data-testid=\"refused\" id=\"refused\" hidden><strong>Files of the rules folder that were not loaded</strong>\
<ul class=\"refused-list\" id=\"refused-list\"></ul></div>\
<p class=\"sr-only\" id=\"announce\" data-testid=\"announce\" aria-live=\"polite\"></p>\
<div class=\"rules-top\">\
<section class=\"alerts-section\" aria-labelledby=\"alerts-title\">\
<div class=\"section-head\"><h2 id=\"alerts-title\" tabindex=\"-1\">Recent alerts</h2>\
<form class=\"alert-filter\" id=\"alert-filter\" role=\"search\" aria-label=\"Filter alerts\">\
<label for=\"alert-rule\">Rule</label><select id=\"alert-rule\" data-testid=\"alert-rule\"><option value=\"\">All rules</option></select>\
<button type=\"button\" class=\"btn subtle small\" data-testid=\"alert-rule-clear\" hidden>Show all rules</button></form></div>\
<div class=\"table-wrap alerts-wrap\" tabindex=\"0\" role=\"region\" aria-labelledby=\"alerts-title\"><table class=\"list alerts\" data-testid=\"alerts-table\" id=\"alerts-table\">\
<caption class=\"sr-only\">Alerts, newest first.</caption>\
<thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Rule</th><th scope=\"col\">What happened</th>\
<th scope=\"col\">Event time</th><th scope=\"col\">Principal</th><th scope=\"col\">Source IP</th>\
<th scope=\"col\"><span class=\"sr-only\">Event</span></th></tr></thead><tbody></tbody></table></div>\
<p class=\"empty\" data-testid=\"no-alerts\" hidden>No alerts yet.</p>\
<button type=\"button\" class=\"btn subtle load-more\" data-testid=\"alerts-more\" hidden>Load more alerts</button></section>\
<section class=\"card hits\" aria-labelledby=\"hits-title\"><h2 id=\"hits-title\">Alerts per rule</h2>\
<ol class=\"hit-bars\" data-testid=\"hits-chart\" id=\"hits-chart\"></ol>\
<p class=\"empty\" data-testid=\"no-hits\" hidden>No rule has raised an alert yet.</p>\
<p class=\"hint\">Choose a rule to see its alerts.</p></section></div>\
<section aria-labelledby=\"rules-title\" class=\"rules-section\">\
<div class=\"section-head\"><h2 id=\"rules-title\">Rules</h2><span class=\"count\" id=\"rules-count\" data-testid=\"rules-count\"></span></div>\
<div class=\"table-wrap\"><table class=\"list rules\" data-testid=\"rules-table\" id=\"rules-table\">\
<caption class=\"sr-only\">Rules of this account: the default pack, the rules folder and the account's own. A rule's name shows its details.</caption>\
<thead><tr><th scope=\"col\">Rule</th><th scope=\"col\">Origin</th><th scope=\"col\">Kind</th><th scope=\"col\">Severity</th>\
<th scope=\"col\">Enabled</th><th scope=\"col\" class=\"num\">Matched</th><th scope=\"col\" class=\"num\">Alerts</th>\
<th scope=\"col\">Last match</th></tr></thead><tbody></tbody></table></div>\
<p class=\"status\" id=\"status\" aria-live=\"polite\">Loading rules...</p></section>\
{form}\
<section aria-labelledby=\"targets-title\" class=\"targets-section\"><h2 id=\"targets-title\">Alert targets</h2>\
<div class=\"table-wrap\" data-testid=\"targets-wrap\"><table class=\"list targets\" data-testid=\"targets-table\" id=\"targets-table\">\
<thead><tr><th scope=\"col\">Target</th><th scope=\"col\" class=\"num\">Delivered</th><th scope=\"col\" class=\"num\">Pending</th>\
<th scope=\"col\" class=\"num\">Failed attempts</th><th scope=\"col\" class=\"num\">Dead-lettered</th><th scope=\"col\">Last delivery</th>\
<th scope=\"col\">Last error</th></tr></thead><tbody></tbody></table></div>\
<p class=\"hint\" data-testid=\"dead-letter-file\" id=\"dead-letter-file\" hidden></p>\
<div class=\"empty-state\" data-testid=\"no-targets\" hidden><p><strong>No alert targets.</strong> Alerts are kept here only.</p>\
<p>Start the server with one or more targets to send them on:</p>\
<code>cairn serve --alert-target webhook=https://hooks.example.com/cairn --alert-target slack=URL --alert-target file=PATH --alert-target stdout</code></div></section></div>",
        put = may.put,
        toggle = may.toggle,
        delete = may.delete,
    )
}

fn trails_main() -> String {
    "<div class=\"page-head\"><h1>Trails</h1></div>\
<p class=\"lead\">The account's trails and their delivery status (read-only here: manage trails with the AWS CLI).</p>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<div class=\"table-wrap\"><table class=\"list\" data-testid=\"trails-table\" id=\"trails-table\">\
<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Home region</th><th scope=\"col\">Multi-region</th>\
<th scope=\"col\">S3 bucket</th><th scope=\"col\">Log file validation</th><th scope=\"col\">Status</th>\
<th scope=\"col\">Latest delivery</th></tr></thead><tbody></tbody></table></div>\
<p class=\"empty\" data-testid=\"no-trails\" hidden>This account has no trails.</p>\
<p class=\"status\" id=\"status\" aria-live=\"polite\">Loading trails...</p>"
        .into()
}

fn settings_main(admin: bool) -> String {
    if !admin {
        return "<div class=\"page-head\"><h1>Settings</h1></div>\
<p class=\"error\" data-testid=\"error\" role=\"alert\">Your policies do not allow managing users (iam:ListUsers).</p>"
            .into();
    }
    "<div class=\"page-head\"><h1>Settings</h1></div>\
<div class=\"error\" data-testid=\"error\" role=\"alert\" hidden></div>\
<div class=\"notice\" data-testid=\"secret\" id=\"secret\" role=\"status\" hidden></div>\
<section aria-labelledby=\"create-user-title\" class=\"card\"><h2 id=\"create-user-title\">Create a user</h2>\
<form id=\"create-user\" class=\"inline-form\">\
<label for=\"new-user\">User name</label><input id=\"new-user\" data-testid=\"new-user-name\" required maxlength=\"64\" pattern=\"[\\w+=,.@\\-]+\" autocomplete=\"off\" spellcheck=\"false\">\
<label for=\"new-user-policy\">Policy</label><select id=\"new-user-policy\" data-testid=\"new-user-policy\"><option value=\"\">(none)</option></select>\
<label for=\"new-user-password\">Console password (optional)</label><input id=\"new-user-password\" data-testid=\"new-user-password\" type=\"password\" autocomplete=\"new-password\">\
<button type=\"submit\" class=\"btn\" data-testid=\"create-user\">Create user</button></form></section>\
<section aria-labelledby=\"users-title\"><h2 id=\"users-title\">Users and access keys</h2>\
<div class=\"table-wrap\"><table class=\"list\" data-testid=\"users-table\" id=\"users-table\">\
<thead><tr><th scope=\"col\">User</th><th scope=\"col\">Created</th><th scope=\"col\">Console password</th>\
<th scope=\"col\">Policies</th><th scope=\"col\">Access keys</th><th scope=\"col\">Actions</th></tr></thead>\
<tbody></tbody></table></div>\
<p class=\"status\" id=\"status\" aria-live=\"polite\">Loading users...</p></section>"
        .into()
}

// ---------------------------------------------------------------------------------------
// The view's parameters

/// Decodes a query string into its pairs, in order (a key may repeat).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The parameters of a view (page URL, download, live stream).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ViewParams {
    pub start: Option<String>,
    pub end: Option<String>,
    /// `f=Key:value`, in order.
    pub filters: Vec<String>,
    pub format: Option<String>,
    pub csrf: String,
    pub since: Option<String>,
}

/// A view resolved against the clock: times in epoch ms (None: unbounded).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub attributes: Vec<(String, String)>,
}

/// At most this many filters in one view.
const MAX_FILTERS: usize = 50;

fn bad_time(msg: String) -> ApiError {
    ApiError::bad("InvalidTimeRangeException", msg)
}

/// A time of a view: epoch seconds, `now`, `now-<n><s|m|h|d|w>`, or ISO 8601 (UTC when no
/// zone is given). `all` (no bound) is the caller's business.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, ApiError> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(rel) = s.strip_prefix("now-") {
        // (By the last character, not byte: the text comes from a URL.)
        let last = rel.chars().last().map_or(0, char::len_utf8);
        let (n, unit) = rel.split_at(rel.len() - last);
        let unit_ms: i64 = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => {
                return Err(bad_time(format!(
                    "{s:?}: a relative time is now-<number><s|m|h|d|w>"
                )));
            }
        };
        let n: i64 = n
            .parse()
            .ok()
            .filter(|n| (0..=100_000_000).contains(n))
            .ok_or_else(|| {
                bad_time(format!("{s:?}: a relative time is now-<number><s|m|h|d|w>"))
            })?;
        return Ok(now_ms - n * unit_ms);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s
            .parse()
            .ok()
            .filter(|n| *n < 100_000_000_000)
            .ok_or_else(|| bad_time(format!("{s:?} is not a time")))?;
        return Ok(secs * 1000);
    }
    cairn_event::parse_event_time(s)
        .or_else(|| {
            let with_zone = if s.len() == 10 {
                format!("{s}T00:00:00Z")
            } else if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                format!("{s}Z")
            };
            cairn_event::parse_event_time(&with_zone)
        })
        .ok_or_else(|| {
            bad_time(format!(
                "{s:?} is not a time: use epoch seconds, now, now-24h or 2026-11-21T17:45:00Z"
            ))
        })
}

impl ViewParams {
    pub fn parse(query: &str) -> ViewParams {
        let mut p = ViewParams::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "start" => p.start = Some(v),
                "end" => p.end = Some(v),
                "f" => p.filters.push(v),
                "format" => p.format = Some(v),
                "csrf" => p.csrf = v,
                "since" => p.since = Some(v),
                _ => {}
            }
        }
        p
    }

    /// The view at `now_ms`: the start defaults to 24 hours ago, the end to now.
    pub fn resolve(&self, now_ms: i64) -> Result<View, ApiError> {
        let start_ms = match self.start.as_deref().map(str::trim) {
            None | Some("") => Some(now_ms - 86_400_000),
            Some("all") => None,
            Some(s) => Some(parse_time(s, now_ms)?),
        };
        let end_ms = match self.end.as_deref().map(str::trim) {
            None | Some("") => Some(now_ms),
            Some(s) => Some(parse_time(s, now_ms)?),
        };
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && s > e
        {
            return Err(bad_time("the start of the range is after its end".into()));
        }
        if self.filters.len() > MAX_FILTERS {
            return Err(ApiError::bad(
                "InvalidLookupAttributesException",
                format!("at most {MAX_FILTERS} filters"),
            ));
        }
        let mut attributes = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            let Some((k, v)) = f.split_once(':') else {
                return Err(ApiError::bad(
                    "InvalidLookupAttributesException",
                    format!("filter {f:?} must be <AttributeKey>:<value>"),
                ));
            };
            attributes.push((k.to_owned(), v.to_owned()));
        }
        Ok(View {
            start_ms,
            end_ms,
            attributes,
        })
    }

    /// `since` (epoch ms) for the live stream; now when absent, at most 15 minutes back.
    pub fn since_ms(&self, now_ms: i64) -> Result<i64, ApiError> {
        let since = match self.since.as_deref() {
            None | Some("") => now_ms,
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| bad_time(format!("since {s:?} must be epoch milliseconds")))?,
        };
        Ok(since.clamp(now_ms - 15 * 60_000, now_ms))
    }
}

impl View {
    /// The LookupEvents input of this view.
    pub fn input(&self) -> Input {
        let attrs: Vec<Value> = self
            .attributes
            .iter()
            .map(|(k, v)| json!({"AttributeKey": k, "AttributeValue": v}))
            .collect();
        let mut m = Map::new();
        m.insert("LookupAttributes".into(), Value::Array(attrs));
        if let Some(s) = self.start_ms {
            m.insert("StartTime".into(), json!(s as f64 / 1000.0));
        }
        if let Some(e) = self.end_ms {
            m.insert("EndTime".into(), json!(e as f64 / 1000.0));
        }
        Input(m)
    }

    /// How a call on this view is recorded.
    fn request_parameters(&self, extra: &[(&str, Value)]) -> Value {
        let mut m = Map::new();
        for (k, v) in extra {
            m.insert((*k).into(), v.clone());
        }
        let attrs: Vec<Value> = self
            .attributes
            .iter()
            .map(|(k, v)| json!({"attributeKey": k, "attributeValue": v}))
            .collect();
        m.insert("lookupAttributes".into(), Value::Array(attrs));
        if let Some(s) = self.start_ms {
            m.insert("startTime".into(), json!(cairn_event::format_event_time(s)));
        }
        if let Some(e) = self.end_ms {
            m.insert("endTime".into(), json!(cairn_event::format_event_time(e)));
        }
        Value::Object(m)
    }
}

// ---------------------------------------------------------------------------------------
// CSV

/// Appends one CSV field (RFC 4180): a field a spreadsheet would take for a formula
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`; a field
/// with a comma, quote or line break is quoted, its quotes doubled.
pub fn csv_field(out: &mut String, value: &str) {
    let formula = matches!(
        value.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    );
    let quote = value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quote {
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One CSV line (CRLF-terminated).
pub fn csv_line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut out = String::new();
    let labels: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    csv_line(&mut out, &labels);
    out
}

/// The CSV line of a stored record, in [`COLUMNS`] order (None if it cannot be read).
pub fn csv_record(out: &mut String, record: &[u8]) -> Option<()> {
    let v = cairn_event::lookup_view(record).ok()?;
    let time = cairn_event::format_event_time(v.time_ms);
    let types: Vec<&str> = v
        .resources
        .iter()
        .filter_map(|r| r.resource_type.as_deref())
        .collect();
    let names: Vec<&str> = v.resources.iter().map(|r| r.name.as_str()).collect();
    let (types, names) = (types.join(", "), names.join(", "));
    let read_only = match v.read_only {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    };
    csv_line(
        out,
        &[
            &time,
            v.username.as_deref().unwrap_or_default(),
            &v.event_name,
            &types,
            &names,
            &v.event_source,
            v.access_key_id.as_deref().unwrap_or_default(),
            v.region.as_deref().unwrap_or_default(),
            v.error_code.as_deref().unwrap_or_default(),
            v.source_ip.as_deref().unwrap_or_default(),
            read_only,
            &v.event_id,
        ],
    );
    Some(())
}

// ---------------------------------------------------------------------------------------
// Streamed bodies

type Chunk = Result<Bytes, std::io::Error>;

/// A response body fed through a channel; dropping it (the client went away) closes the
/// channel, which stops the producer.
struct ChannelBody(mpsc::Receiver<Chunk>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// Records a console call (a read) in the caller's account, without waiting.
async fn record_call(
    state: &AppState,
    caller: &Caller,
    event_name: &str,
    request_id: &str,
    request_parameters: &Value,
    error: Option<&ApiError>,
) {
    let null = Value::Null;
    let record = Record {
        event_version: "1.11",
        user_identity: audit::user_identity(caller),
        event_time: cairn_event::format_event_time(cairn_event::now_ms()),
        event_source: "cloudtrail.amazonaws.com",
        event_name,
        aws_region: &caller.region,
        source_ip_address: &caller.origin.source_ip,
        user_agent: &caller.origin.user_agent,
        error_code: error.map(|e| e.code),
        error_message: error.map(|e| e.message.chars().take(1000).collect()),
        request_parameters,
        response_elements: &null,
        additional_event_data: None,
        request_id: Some(request_id),
        event_id: uuid::Uuid::new_v4().to_string(),
        read_only: true,
        event_type: "AwsApiCall",
        management_event: true,
        recipient_account_id: &caller.account_id,
        event_category: "Management",
        session_credential_from_console: caller.console.as_ref().map(|_| "true"),
        tls_details: TlsDetails::of(&caller.origin),
    }
    .to_bytes();
    drop(state.auditor.record(&caller.account_id, record).await);
}

/// The caller of a console endpoint, and the view it asks for: the session cookie with
/// the `csrf` parameter, then `cloudtrail:LookupEvents`, then valid parameters. A refusal
/// after the caller is known is recorded as `event_name`.
async fn console_call(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
    event_name: &str,
    request_id: &str,
) -> Result<(Caller, ViewParams, View, Lookup), Response> {
    let params = ViewParams::parse(uri.query().unwrap_or_default());
    let origin = Origin::of(headers, extensions);
    let caller = state
        .console
        .caller_with_token(headers, &params.csrf, &origin, &state.region)
        .map_err(IntoResponse::into_response)?;
    let now = cairn_event::now_ms();
    let checked = (|| {
        let view = params.resolve(now)?;
        if event_name == "ExportEvents" && !matches!(params.format.as_deref(), Some("csv" | "json"))
        {
            return Err(ApiError::bad(
                "ValidationException",
                "format must be csv or json",
            ));
        }
        authorize(&caller, "cloudtrail:LookupEvents", "*")?;
        let lookup = Lookup::parse(&caller.account_id, &view.input())?;
        Ok((view, lookup))
    })();
    let mut extra = Vec::new();
    if let Some(f) = &params.format {
        extra.push(("format", json!(f)));
    }
    let recorded = match &checked {
        Ok((view, _)) => view.request_parameters(&extra),
        Err(_) => {
            json!({ "query": uri.query().unwrap_or_default().split('&').filter(|p| !p.starts_with("csrf=")).collect::<Vec<_>>().join("&") })
        }
    };
    record_call(
        state,
        &caller,
        event_name,
        request_id,
        &recorded,
        checked.as_ref().err(),
    )
    .await;
    match checked {
        Ok((view, lookup)) => Ok((caller, params, view, lookup)),
        Err(e) => Err(e.into_response()),
    }
}

// ---------------------------------------------------------------------------------------
// Downloads

/// Records read per store lookup while exporting.
const EXPORT_PAGE: usize = 1000;

/// `GET /v1/console/export?format=csv|json&<view>&csrf=<token>`: every event of the view,
/// newest first, streamed.
async fn export(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let (_, params, _, lookup) =
        match console_call(&state, &uri, &headers, &extensions, "ExportEvents", &id).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
    let csv = params.format.as_deref() == Some("csv");
    let mut query = lookup.query;
    query.limit = EXPORT_PAGE;
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || export_to(&store, query, csv, &tx));
    let stamp: String = cairn_event::format_event_time(cairn_event::now_ms())
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    let mut resp = Body::new(ChannelBody(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"cairn-events-{stamp}.{ext}\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Pages through the store and sends the download in chunks; stops when the client goes.
fn export_to(store: &Store, mut query: Query, csv: bool, tx: &mpsc::Sender<Chunk>) {
    const CHUNK: usize = 64 * 1024;
    let send = |buf: &mut String| {
        let chunk = Bytes::from(std::mem::take(buf));
        tx.blocking_send(Ok(chunk)).is_ok()
    };
    let mut buf = if csv {
        csv_header()
    } else {
        String::from("{\"Records\":[")
    };
    let mut first = true;
    loop {
        let page = match store.lookup(&query) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        for found in &page.events {
            if csv {
                if csv_record(&mut buf, &found.record).is_none() {
                    tracing::error!("a stored record cannot be read for export; skipped");
                }
            } else {
                buf.push_str(if first { "\n" } else { ",\n" });
                buf.push_str(&String::from_utf8_lossy(&found.record));
            }
            first = false;
            if buf.len() >= CHUNK && !send(&mut buf) {
                return;
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    if !csv {
        buf.push_str("\n]}\n");
    }
    send(&mut buf);
}

// ---------------------------------------------------------------------------------------
// Live

/// Events sent at once when a stream opens (what arrived since the page's first lookup).
const LIVE_CATCH_UP: usize = 200;
/// Journal records read per step while following new events.
const LIVE_FEED: usize = 5000;
/// A comment line this often keeps proxies from closing a quiet stream.
const LIVE_PING: Duration = Duration::from_secs(15);

/// Turns true when live streams must end: the server is shutting down (a graceful shutdown
/// waits for open responses, and a live stream never ends by itself).
static STREAMS_END: LazyLock<tokio::sync::watch::Sender<bool>> =
    LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Ends every open live stream, and those opened later, at once. `cairn serve` calls it when
/// it begins to shut down; a graceful shutdown waits for open responses, and a live stream
/// never ends by itself.
pub fn end_streams() {
    STREAMS_END.send_replace(true);
}

fn streams_end() -> tokio::sync::watch::Receiver<bool> {
    STREAMS_END.subscribe()
}

/// `GET /v1/console/live?<view>&since=<epoch ms>&csrf=<token>`: a Server-Sent Events stream
/// of the events of the view (its end is ignored: "now") that Cairn stores from now on, as
/// `event: events` messages whose data is `{"Events": [...]}` in LookupEvents' shape. It
/// begins with the events of the view whose time is at or after `since` (at most 15 minutes
/// back), so nothing stored between the page's lookup and the stream is missed; the page
/// drops those it shows already. The stream ends with the session.
async fn live(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let (caller, params, _, lookup) =
        match console_call(&state, &uri, &headers, &extensions, "LiveEvents", &id).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
    let since = match params.since_ms(cairn_event::now_ms()) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut base = lookup.query;
    base.end_ms = None;
    base.after = None;
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    tokio::spawn(follow(
        state.clone(),
        headers.clone(),
        caller.account_id.clone(),
        base,
        since,
        tx,
    ));
    let mut resp = Body::new(ChannelBody(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// One `events` message.
fn sse_events(events: Vec<Value>) -> Bytes {
    let data = json!({ "Events": events }).to_string();
    Bytes::from(format!("event: events\ndata: {data}\n\n"))
}

/// The events of `query` (newest first), as LookupEvents gives them.
async fn lookup_events(store: &Arc<Store>, query: Query) -> Vec<(String, Value)> {
    let store = store.clone();
    let found = tokio::task::spawn_blocking(move || store.lookup(&query)).await;
    let page = match found {
        Ok(Ok(page)) => page,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "live lookup failed");
            return Vec::new();
        }
        Err(e) => {
            tracing::error!(error = %e, "live lookup failed");
            return Vec::new();
        }
    };
    page.events
        .iter()
        .filter_map(|f| {
            let v = event_json(&f.record).ok()?;
            let id = v.get("EventId")?.as_str()?.to_owned();
            Some((id, v))
        })
        .collect()
}

/// The eventIDs of `account`'s records stored between `from` and the durable end.
async fn stored_ids(
    store: &Arc<Store>,
    account: &str,
    from: cairn_store::Position,
) -> (Vec<String>, cairn_store::Position) {
    let store = store.clone();
    let account = account.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let until = store.durable_end();
        store.feed(from, until, LIVE_FEED, |a| a == account)
    })
    .await;
    match read {
        Ok(Ok((frames, next))) => {
            let ids = frames
                .iter()
                .flat_map(|f| f.records.iter())
                .filter_map(|r| cairn_event::lookup_view(r).ok().map(|v| v.event_id))
                .collect();
            (ids, next)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "live stream cannot read the journal");
            (Vec::new(), from)
        }
        Err(e) => {
            tracing::error!(error = %e, "live stream cannot read the journal");
            (Vec::new(), from)
        }
    }
}

async fn follow(
    state: Arc<AppState>,
    headers: HeaderMap,
    account: String,
    base: Query,
    since_ms: i64,
    tx: mpsc::Sender<Chunk>,
) {
    let store = state.store.clone();
    let mut end = streams_end();
    if *end.borrow_and_update() {
        return;
    }
    // Everything stored after this point comes through the journal; what came before and
    // after `since`, through one lookup.
    let mut pos = store.durable_end();
    if tx
        .send(Ok(Bytes::from_static(b"retry: 2000\n: live\n\n")))
        .await
        .is_err()
    {
        return;
    }
    let mut catch_up = base.clone();
    catch_up.start_ms = Some(base.start_ms.map_or(since_ms, |s| s.max(since_ms)));
    catch_up.limit = LIVE_CATCH_UP;
    let first = lookup_events(&store, catch_up).await;
    let sent: HashSet<String> = first.iter().map(|(id, _)| id.clone()).collect();
    if !first.is_empty()
        && tx
            .send(Ok(sse_events(first.into_iter().map(|e| e.1).collect())))
            .await
            .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            _ = store.wait_past(pos, LIVE_PING) => {}
            _ = tx.closed() => return,
            _ = end.changed() => return,
        }
        if !state.console.session_alive(&headers) {
            let _ = tx
                .send(Ok(Bytes::from_static(
                    b"event: ended\ndata: {\"message\":\"The console session has ended: sign in again.\"}\n\n",
                )))
                .await;
            return;
        }
        if store.durable_end() <= pos {
            if tx
                .send(Ok(Bytes::from_static(b": ping\n\n")))
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let (ids, next) = stored_ids(&store, &account, pos).await;
        pos = next;
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| !sent.contains(id))
            .filter(|id| base.event_ids.is_empty() || base.event_ids.contains(id))
            .collect();
        for chunk in ids.chunks(100) {
            let mut q = base.clone();
            q.event_ids = chunk.to_vec();
            q.limit = chunk.len();
            let events: Vec<Value> = lookup_events(&store, q)
                .await
                .into_iter()
                .map(|e| e.1)
                .collect();
            if !events.is_empty() && tx.send(Ok(sse_events(events))).await.is_err() {
                return;
            }
        }
        // Let a burst gather into one message.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(v: &str) -> String {
        let mut out = String::new();
        csv_field(&mut out, v);
        out
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv("alana"), "alana");
        assert_eq!(csv(""), "");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv("=1+2"), "'=1+2");
        assert_eq!(csv("+33 1"), "'+33 1");
        assert_eq!(csv("-2"), "'-2");
        assert_eq!(csv("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv("\tx"), "'\tx");
        assert_eq!(csv("\rx"), "\"'\rx\"");
        assert_eq!(csv("a=b"), "a=b");
        assert_eq!(csv("1.2.3.4"), "1.2.3.4");
        let mut line = String::new();
        csv_line(&mut line, &["a", "b,c", "=x"]);
        assert_eq!(line, "a,\"b,c\",'=x\r\n");
        assert!(csv_header().starts_with("Event time,User name,Event name,"));
        assert!(csv_header().ends_with("Read-only,Event ID\r\n"));
    }

    #[test]
    fn csv_records_have_the_twelve_columns() {
        let record = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alana","accountId":"111122223333","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"alana"},"eventTime":"2020-06-09T13:37:34Z","eventSource":"rds.amazonaws.com","eventName":"DeleteDBInstance","awsRegion":"us-west-2","sourceIPAddress":"205.251.233.48","errorCode":"=cmd|' /C calc'!A0","requestParameters":{"dBInstanceIdentifier":"cat-photos-db"},"eventID":"0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f","readOnly":false,"resources":[{"ARN":"arn:aws:rds:us-west-2:111122223333:db:cat-photos-db","type":"AWS::RDS::DBInstance"}],"recipientAccountId":"111122223333"}"#;
        let mut out = String::new();
        csv_record(&mut out, record).unwrap();
        assert_eq!(
            out,
            "2020-06-09T13:37:34Z,alana,DeleteDBInstance,AWS::RDS::DBInstance,cat-photos-db,rds.amazonaws.com,AKIAIOSFODNN7EXAMPLE,us-west-2,'=cmd|' /C calc'!A0,205.251.233.48,false,0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f\r\n"
        );
        assert!(csv_record(&mut out, b"not json").is_none());
    }

    #[test]
    fn view_parameters_parse() {
        let p = ViewParams::parse(
            "start=now-7d&end=now&f=Username:alana&f=EventName:Delete%3ADB&f=ResourceName:a+b&csrf=tok&format=csv&since=123&other=1",
        );
        assert_eq!(p.start.as_deref(), Some("now-7d"));
        assert_eq!(p.end.as_deref(), Some("now"));
        assert_eq!(
            p.filters,
            ["Username:alana", "EventName:Delete:DB", "ResourceName:a b"]
        );
        assert_eq!(p.csrf, "tok");
        assert_eq!(p.format.as_deref(), Some("csv"));
        let now = 1_800_000_000_000;
        let v = p.resolve(now).unwrap();
        assert_eq!(v.start_ms, Some(now - 7 * 86_400_000));
        assert_eq!(v.end_ms, Some(now));
        assert_eq!(
            v.attributes,
            [
                ("Username".to_owned(), "alana".to_owned()),
                ("EventName".to_owned(), "Delete:DB".to_owned()),
                ("ResourceName".to_owned(), "a b".to_owned()),
            ]
        );
        let input = v.input();
        assert_eq!(input.0["StartTime"], json!(1_799_395_200.0));
        assert_eq!(
            input.0["LookupAttributes"][1]["AttributeValue"],
            "Delete:DB"
        );
    }

    #[test]
    fn view_times() {
        let now = 1_800_000_000_000;
        let v = ViewParams::default().resolve(now).unwrap();
        assert_eq!(v.start_ms, Some(now - 86_400_000));
        assert_eq!(v.end_ms, Some(now));
        let v = ViewParams::parse("start=all").resolve(now).unwrap();
        assert_eq!(v.start_ms, None);
        assert!(!v.input().0.contains_key("StartTime"));
        let v = ViewParams::parse("start=1591709854&end=1591796254")
            .resolve(now)
            .unwrap();
        assert_eq!(v.start_ms, Some(1_591_709_854_000));
        assert_eq!(v.end_ms, Some(1_591_796_254_000));
        assert_eq!(parse_time("now-15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_time("now-90d", now).unwrap(), now - 90 * 86_400_000);
        assert_eq!(parse_time("now-2w", now).unwrap(), now - 14 * 86_400_000);
        assert_eq!(parse_time("now-30s", now).unwrap(), now - 30_000);
        for bad in ["now-", "now-é", "now-1é", "now-x", "now-1y", "now--1d"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert_eq!(
            parse_time("2020-06-09T13:37:34Z", now).unwrap(),
            1_591_709_854_000
        );
        assert_eq!(
            parse_time("2020-06-09T13:37:34", now).unwrap(),
            1_591_709_854_000
        );
        assert_eq!(
            parse_time("2020-06-09T13:37", now).unwrap(),
            1_591_709_820_000
        );
        assert_eq!(parse_time("2020-06-09", now).unwrap(), 1_591_660_800_000);
        for bad in ["now-", "now-5y", "now-xh", "yesterday", "-5", "1e9"] {
            let e = parse_time(bad, now).unwrap_err();
            assert_eq!(e.code, "InvalidTimeRangeException", "{bad}");
        }
        let e = ViewParams::parse("start=now&end=now-1h")
            .resolve(now)
            .unwrap_err();
        assert_eq!(e.code, "InvalidTimeRangeException");
        let e = ViewParams::parse("f=Username").resolve(now).unwrap_err();
        assert_eq!(e.code, "InvalidLookupAttributesException");
    }

    #[test]
    fn live_since_is_bounded() {
        let now = 1_800_000_000_000;
        assert_eq!(ViewParams::default().since_ms(now).unwrap(), now);
        let p = ViewParams::parse(&format!("since={}", now - 5000));
        assert_eq!(p.since_ms(now).unwrap(), now - 5000);
        let p = ViewParams::parse("since=0");
        assert_eq!(p.since_ms(now).unwrap(), now - 15 * 60_000);
        let p = ViewParams::parse(&format!("since={}", now + 60_000));
        assert_eq!(p.since_ms(now).unwrap(), now);
        assert!(ViewParams::parse("since=soon").since_ms(now).is_err());
    }

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        assert!(events_main().contains("data-testid=\"preset-90d\""));
        assert!(events_main().contains("data-testid=\"column-toggle-SourceIpAddress\""));
        assert!(asset_url("console.js").starts_with("/console/assets/console.js?v="));
        let i = insights_main();
        assert!(i.contains("data-testid=\"insights-range-90d\""));
        assert!(i.contains("PutInsightSelectors"));
        let q = queries_main();
        assert!(q.contains("data-testid=\"sample-failed-by-ip\""));
        // A sample's statement is an attribute: its quotes are escaped.
        assert!(q.contains("WHERE eventname = &#39;ConsoleLogin&#39;"));
        assert!(!q.contains("= 'ConsoleLogin'"));
        let all = RulePermissions {
            put: true,
            toggle: true,
            delete: true,
        };
        let r = rules_main(all);
        assert!(r.contains("data-testid=\"rule-pattern\""));
        assert!(r.contains("data-can-toggle=\"true\""));
        assert!(r.contains("<option value=\"medium\" selected>"));
        // The example pattern's braces survive formatting.
        assert!(r.contains("{\"source\": [\"aws.iam\"]"));
        let none = RulePermissions {
            put: false,
            toggle: false,
            delete: false,
        };
        let r = rules_main(none);
        assert!(!r.contains("data-testid=\"rule-form\""));
        assert!(r.contains("data-testid=\"rule-form-denied\""));
        assert!(r.contains("data-can-delete=\"false\""));
    }
}
