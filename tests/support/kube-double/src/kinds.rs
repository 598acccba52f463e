//! The resource kinds the double serves.

/// A served resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Job,
    Pod,
    ConfigMap,
}

impl Kind {
    /// From the plural resource name in a path.
    pub fn from_resource(group: &str, resource: &str) -> Option<Kind> {
        match (group, resource) {
            ("batch", "jobs") => Some(Kind::Job),
            ("", "pods") => Some(Kind::Pod),
            ("", "configmaps") => Some(Kind::ConfigMap),
            _ => None,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    pub fn list_kind(self) -> String {
        format!("{}List", self.kind())
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            _ => "v1",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Kind::Job => "batch",
            _ => "",
        }
    }

    pub fn resource(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
        }
    }

    /// `jobs.batch`, `pods`: as API server messages name a resource.
    pub fn group_resource(self) -> String {
        match self.group() {
            "" => self.resource().to_string(),
            group => format!("{}.{group}", self.resource()),
        }
    }
}
