//! Mapping sets: the direction from the peer to this site, checked
//! against both sites' inventories.

use super::*;

impl Site {
    /// Both directions: this site's, then the peer's as last seen.
    pub fn mappings(&self) -> Vec<Mappings> {
        let mut all: Vec<Mappings> = lock(&self.protection.objects)
            .mappings
            .values()
            .cloned()
            .collect();
        if let Some(view) = self.peer_view() {
            all.extend(view.mappings.into_iter().filter(|m| m.owner != self.name));
        }
        all
    }

    pub fn mapping(&self, id: &str) -> Result<Mappings, SiteError> {
        self.mappings()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| SiteError::NotFound(format!("no mappings {id}")))
    }

    pub(super) fn check_mapping(&self, spec: &MappingSpec) -> Result<(), SiteError> {
        let peer = self.peer_name()?;
        if spec.to_site != self.name {
            return Err(Self::wrong_site(
                "mappings",
                &mapping_id(&spec.from_site, &spec.to_site),
                &spec.to_site,
            ));
        }
        if spec.from_site != peer {
            return Err(SiteError::invalid(
                "from_site",
                format!(
                    "{:?} is not the peer site; mappings here come from {peer}",
                    spec.from_site
                ),
            ));
        }
        let view = self.peer_view();
        let nics = |vm: &str| {
            view.as_ref()
                .and_then(|v| v.vms.iter().find(|x| x.id == vm))
                .map(|x| x.nics.len())
        };
        mapping::validate(
            spec,
            view.as_ref().map(|v| &v.inventory),
            &self.inventory(),
            nics,
        )?;
        Ok(())
    }

    /// Creates (`create`) or replaces the mappings with `id`.
    pub async fn put_mappings(
        &self,
        id: Option<&str>,
        spec: MappingSpec,
    ) -> Result<Mappings, SiteError> {
        let spec_id = mapping_id(&spec.from_site, &spec.to_site);
        if let Some(id) = id
            && id != spec_id
        {
            if let Ok(existing) = self.mapping(id)
                && existing.owner != self.name
            {
                return Err(Self::wrong_site("mappings", id, &existing.owner));
            }
            let field = if id.starts_with(&format!("{}-to-", spec.from_site)) {
                "to_site"
            } else {
                "from_site"
            };
            return Err(SiteError::invalid(
                field,
                format!("the body describes {spec_id}, not {id}"),
            ));
        }
        self.check_mapping(&spec)?;
        let exists = lock(&self.protection.objects)
            .mappings
            .contains_key(&spec_id);
        if id.is_none() && exists {
            return Err(SiteError::Conflict(format!(
                "mappings {spec_id} exist already; update them with PUT /api/v1/mappings/{spec_id}"
            )));
        }
        let mappings = Mappings {
            id: spec_id.clone(),
            owner: self.name.clone(),
            spec,
            updated_ms: now_ms(),
        };
        let stored = mappings.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Mappings, &stored.id, &stored))
            .await?;
        lock(&self.protection.objects)
            .mappings
            .insert(spec_id, mappings.clone());
        self.events.publish(SiteEvent::Mappings(mappings.clone()));
        self.refresh_protection().await;
        Ok(mappings)
    }

    pub async fn delete_mappings(&self, id: &str) -> Result<(), SiteError> {
        let existing = self.mapping(id)?;
        if existing.owner != self.name {
            return Err(Self::wrong_site("mappings", id, &existing.owner));
        }
        let key = id.to_string();
        self.store
            .call(move |c| store::delete_doc(c, DocKind::Mappings, &key))
            .await?;
        lock(&self.protection.objects).mappings.remove(id);
        self.events
            .publish(SiteEvent::MappingsRemoved { id: id.into() });
        self.refresh_protection().await;
        Ok(())
    }
}
