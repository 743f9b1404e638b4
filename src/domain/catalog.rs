//! Carriers and categories (DESIGN §2). They change only by migration, so
//! they are read once at start and served from memory.
use super::consultation::Complexity;
use super::event::TicketType;
use super::incident::IncidentKind;

/// A parcel carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    pub code: String,
    pub name: String,
    /// Claims are accepted up to this many calendar days after shipping.
    pub claim_window_days: i32,
}

/// An incident or consultation category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub code: String,
    pub name: String,
    pub ticket_type: TicketType,
    /// Incident categories belong to one kind.
    pub incident_kind: Option<IncidentKind>,
    /// Consultation categories set the complexity.
    pub complexity: Option<Complexity>,
    /// Incident categories: days from filing to the estimated resolution.
    pub resolution_target_days: Option<i32>,
    /// Incident categories may accept claims for fewer (or more) days than the carrier.
    pub claim_window_days: Option<i32>,
}

/// Both catalogs, in their display order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub carriers: Vec<Carrier>,
    pub categories: Vec<Category>,
}

impl Catalog {
    pub fn carrier(&self, code: &str) -> Option<&Carrier> {
        self.carriers.iter().find(|c| c.code == code)
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    /// The categories of one ticket type, in display order.
    pub fn categories_of(&self, ticket_type: TicketType) -> impl Iterator<Item = &Category> {
        self.categories
            .iter()
            .filter(move |c| c.ticket_type == ticket_type)
    }

    /// The display name of a carrier code (the code itself if unknown).
    pub fn carrier_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.carrier(code).map_or(code, |c| c.name.as_str())
    }

    pub fn category_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.category(code).map_or(code, |c| c.name.as_str())
    }

    /// For how many days after shipping a claim about a shipment with
    /// `carrier` in `category` is accepted: the category's own window if it
    /// has one, else the carrier's.
    pub fn claim_window_days(&self, carrier: &Carrier, category: &str) -> i32 {
        self.category(category)
            .and_then(|c| c.claim_window_days)
            .unwrap_or(carrier.claim_window_days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let category = |code: &str, window: Option<i32>| Category {
            code: code.into(),
            name: code.into(),
            ticket_type: TicketType::Incident,
            incident_kind: Some(IncidentKind::AdditionalCharge),
            complexity: None,
            resolution_target_days: Some(21),
            claim_window_days: window,
        };
        Catalog {
            carriers: vec![Carrier {
                code: "estafeta".into(),
                name: "Estafeta".into(),
                claim_window_days: 30,
            }],
            categories: vec![category("overweight", Some(15)), category("damaged", None)],
        }
    }

    #[test]
    fn a_categorys_own_claim_window_overrides_the_carriers() {
        let catalog = catalog();
        let estafeta = catalog.carrier("estafeta").unwrap();
        assert_eq!(catalog.claim_window_days(estafeta, "overweight"), 15);
        assert_eq!(catalog.claim_window_days(estafeta, "damaged"), 30);
        assert_eq!(catalog.claim_window_days(estafeta, "unknown"), 30);
    }

    #[test]
    fn unknown_codes_are_named_by_their_code() {
        let catalog = catalog();
        assert_eq!(catalog.carrier_name("estafeta"), "Estafeta");
        assert_eq!(catalog.carrier_name("dhl"), "dhl");
        assert_eq!(catalog.categories_of(TicketType::Consultation).count(), 0);
        assert_eq!(catalog.categories_of(TicketType::Incident).count(), 2);
    }
}
