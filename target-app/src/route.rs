//! The fixed set of routes the service answers, named by their template.
//!
//! Route templates are the `route` label of every metric and the `http.route` of every span, so this
//! list bounds label cardinality: a path that matches nothing is reported as `unmatched`, never verbatim.

use serde::Serialize;

/// Which service a process plays: the app under test or the dependency it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The service under test (`service.name` = `target-app`).
    App,
    /// The dependency called by `/external` and `/checkout` (`service.name` = `downstream`).
    Downstream,
}

impl Role {
    /// The role as spelled on the command line (`app`, `downstream`).
    pub fn name(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Downstream => "downstream",
        }
    }

    /// The default `service.name` of this role.
    pub fn service_name(self) -> &'static str {
        match self {
            Role::App => "target-app",
            Role::Downstream => "downstream",
        }
    }
}

macro_rules! routes {
    ($( $variant:ident => $template:literal, $roles:expr, $faultable:literal, $doc:literal; )*) => {
        /// A route of the service, by template.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Route {
            $( #[doc = $doc] $variant, )*
        }

        impl Route {
            /// Every route, in a stable order (used to size per-route counters).
            pub const ALL: &'static [Route] = &[$(Route::$variant),*];

            /// The route template, as used in metric labels and span names.
            pub fn template(self) -> &'static str {
                match self { $(Route::$variant => $template),* }
            }

            /// What the route does, for the API index.
            pub fn description(self) -> &'static str {
                match self { $(Route::$variant => $doc),* }
            }

            /// Whether `role` serves this route.
            pub fn served_by(self, role: Role) -> bool {
                let roles: &[Role] = match self { $(Route::$variant => $roles),* };
                roles.contains(&role)
            }

            /// Whether chaos faults may be applied to this route. Probes, metrics and the admin API
            /// are never faulted, so a fault never hides itself from the people watching it.
            pub fn faultable(self) -> bool {
                match self { $(Route::$variant => $faultable),* }
            }
        }
    };
}

const BOTH: &[Role] = &[Role::App, Role::Downstream];
const APP: &[Role] = &[Role::App];
const DOWN: &[Role] = &[Role::Downstream];

routes! {
    Index => "/", BOTH, true, "JSON index of this API";
    Slow => "/slow", APP, true, "answers after 1-3 s (override with ?ms=)";
    Error => "/error", APP, true, "fails on purpose: ?type=500|404|timeout|random";
    External => "/external", APP, true, "calls the downstream service with W3C trace context";
    GenerateLoad => "/generate-load", APP, true, "real CPU and allocation work (?ms= budget, default 50)";
    Checkout => "/checkout", APP, true, "business operation: validates a cart, reserves stock and charges payment downstream";
    Data => "/api/data", DOWN, true, "downstream: returns a small record after 5-25 ms";
    InventoryReserve => "/inventory/reserve", DOWN, true, "downstream: reserves stock for a checkout";
    PaymentsCharge => "/payments/charge", DOWN, true, "downstream: charges a payment for a checkout";
    Health => "/health", BOTH, false, "liveness probe, never faulted";
    Metrics => "/metrics", BOTH, false, "Prometheus metrics, never faulted";
    AdminChaos => "/admin/chaos", BOTH, false, "chaos API: GET, PUT or DELETE the active faults";
    Unmatched => "unmatched", BOTH, false, "any path that matches no route (404)";
}

impl Route {
    /// Whether requests to this route get a span and an access log line. Probes and scrapes do not:
    /// they are counted in the request metrics only.
    pub fn traced(self) -> bool {
        !matches!(self, Route::Health | Route::Metrics)
    }

    /// Finds the route for a request path as served by `role`.
    pub fn resolve(path: &str, role: Role) -> Route {
        Route::ALL
            .iter()
            .copied()
            .find(|r| *r != Route::Unmatched && r.template() == path && r.served_by(role))
            .unwrap_or(Route::Unmatched)
    }

    /// Finds a route by its template, whatever the role.
    pub fn from_template(template: &str) -> Option<Route> {
        Route::ALL.iter().copied().find(|r| r.template() == template)
    }

    /// Position in [`Route::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_role() {
        assert_eq!(Route::resolve("/slow", Role::App), Route::Slow);
        assert_eq!(Route::resolve("/slow", Role::Downstream), Route::Unmatched);
        assert_eq!(Route::resolve("/api/data", Role::Downstream), Route::Data);
        assert_eq!(Route::resolve("/nope/123", Role::App), Route::Unmatched);
    }

    #[test]
    fn index_matches_position() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
