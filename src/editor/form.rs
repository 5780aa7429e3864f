//! The two dialogs every editor uses: a form of labelled fields (text, or a
//! choice cycled with ← →) whose errors sit beside the field at fault, and a
//! picker: a list to choose one item from, or several.

use super::error::EditError;

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The API's name for it, so a site's error can find its field.
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    /// Not empty: a choice among these, cycled instead of typed.
    pub choices: Vec<String>,
    /// What to type, shown while the field is empty.
    pub hint: &'static str,
    pub error: Option<String>,
}

impl Field {
    pub fn text(key: &'static str, label: &'static str, value: &str, hint: &'static str) -> Self {
        Self {
            key,
            label,
            value: value.to_string(),
            choices: Vec::new(),
            hint,
            error: None,
        }
    }

    pub fn choice(
        key: &'static str,
        label: &'static str,
        value: &str,
        choices: Vec<String>,
    ) -> Self {
        Self {
            key,
            label,
            value: value.to_string(),
            choices,
            hint: "",
            error: None,
        }
    }
}

/// A form and what it fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form<P> {
    pub title: String,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub purpose: P,
}

impl<P> Form<P> {
    /// The same form, filling in for another purpose (one editor's).
    pub fn retarget<Q>(&self, purpose: Q) -> Form<Q> {
        Form {
            title: self.title.clone(),
            fields: self.fields.clone(),
            focus: self.focus,
            purpose,
        }
    }

    pub fn new(title: impl Into<String>, fields: Vec<Field>, purpose: P) -> Self {
        Self {
            title: title.into(),
            fields,
            focus: 0,
            purpose,
        }
    }

    /// The value of field `key` (empty when there is none).
    pub fn value(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map_or("", |f| f.value.as_str())
    }

    pub fn step(&mut self, by: isize) {
        let n = self.fields.len().max(1) as isize;
        self.focus = (self.focus as isize + by).rem_euclid(n) as usize;
    }

    /// Types `c` into the focused field; a space cycles a choice.
    pub fn type_char(&mut self, c: char) {
        let Some(field) = self.fields.get_mut(self.focus) else {
            return;
        };
        if field.choices.is_empty() {
            field.value.push(c);
            field.error = None;
        } else if c == ' ' {
            self.cycle(1);
        } else {
            // A letter jumps to the next choice that starts with it.
            let at = field
                .choices
                .iter()
                .position(|v| *v == field.value)
                .unwrap_or(0);
            let n = field.choices.len();
            let next = (1..=n)
                .map(|i| &field.choices[(at + i) % n])
                .find(|v| v.to_lowercase().starts_with(c.to_ascii_lowercase()));
            if let Some(next) = next {
                field.value = next.clone();
                field.error = None;
            }
        }
    }

    pub fn erase(&mut self) {
        if let Some(field) = self.fields.get_mut(self.focus)
            && field.choices.is_empty()
        {
            field.value.pop();
            field.error = None;
        }
    }

    pub fn cycle(&mut self, by: isize) {
        let Some(field) = self.fields.get_mut(self.focus) else {
            return;
        };
        if field.choices.is_empty() {
            return;
        }
        let at = field
            .choices
            .iter()
            .position(|c| *c == field.value)
            .unwrap_or(0) as isize;
        let n = field.choices.len() as isize;
        field.value = field.choices[(at + by).rem_euclid(n) as usize].clone();
        field.error = None;
    }

    /// Puts each error beside its field and focuses the first one; errors
    /// for keys the form lacks go to the first field.
    pub fn set_errors(&mut self, errors: Vec<(&str, String)>) {
        for field in &mut self.fields {
            field.error = None;
        }
        let mut first = None;
        for (key, why) in errors {
            let at = self.fields.iter().position(|f| f.key == key).unwrap_or(0);
            if let Some(field) = self.fields.get_mut(at) {
                field.error = Some(why);
            }
            first = Some(first.map_or(at, |f: usize| f.min(at)));
        }
        if let Some(at) = first {
            self.focus = at;
        }
    }
}

/// One line of a picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickItem {
    pub value: String,
    pub label: String,
    /// Said after the label, dimmed: where it is, what it is.
    pub note: String,
    pub chosen: bool,
    /// Why it cannot be chosen, when it cannot.
    pub refused: Option<String>,
}

impl PickItem {
    pub fn new(value: &str, label: &str, note: &str, chosen: bool) -> Self {
        Self {
            value: value.to_string(),
            label: label.to_string(),
            note: note.to_string(),
            chosen,
            refused: None,
        }
    }
}

/// A list to pick from: one item (Enter) or several (Space, then Enter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker<P> {
    pub title: String,
    pub items: Vec<PickItem>,
    pub selected: usize,
    pub multi: bool,
    pub purpose: P,
}

impl<P> Picker<P> {
    pub fn new(title: impl Into<String>, items: Vec<PickItem>, multi: bool, purpose: P) -> Self {
        let selected = items.iter().position(|i| i.chosen).unwrap_or(0);
        Self {
            title: title.into(),
            items,
            selected,
            multi,
            purpose,
        }
    }

    pub fn step(&mut self, by: isize) {
        let last = self.items.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + by).clamp(0, last) as usize;
    }

    /// Toggles the selected item; says why not when it is refused.
    pub fn toggle(&mut self) -> Result<(), EditError> {
        let Some(item) = self.items.get_mut(self.selected) else {
            return Ok(());
        };
        if let Some(why) = &item.refused {
            return Err(EditError::Refused {
                item: item.label.clone(),
                why: why.clone(),
            });
        }
        item.chosen = !item.chosen;
        Ok(())
    }

    /// The chosen values (multi), or the selected one.
    pub fn picked(&self) -> Result<Vec<String>, EditError> {
        if self.multi {
            return Ok(self
                .items
                .iter()
                .filter(|i| i.chosen)
                .map(|i| i.value.clone())
                .collect());
        }
        match self.items.get(self.selected) {
            Some(item) => match &item.refused {
                Some(why) => Err(EditError::Refused {
                    item: item.label.clone(),
                    why: why.clone(),
                }),
                None => Ok(vec![item.value.clone()]),
            },
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_type_cycle_and_place_errors() {
        let mut form = Form::new(
            "t",
            vec![
                Field::text("a", "A", "", ""),
                Field::choice("b", "B", "x", vec!["x".into(), "y".into()]),
            ],
            (),
        );
        form.type_char('1');
        form.step(1);
        form.type_char(' ');
        assert_eq!((form.value("a"), form.value("b")), ("1", "y"));
        form.cycle(1);
        assert_eq!(form.value("b"), "x");
        form.type_char('y');
        assert_eq!(form.value("b"), "y", "a letter picks the choice");
        form.set_errors(vec![("a", "bad".into())]);
        assert_eq!(
            (form.focus, form.fields[0].error.as_deref()),
            (0, Some("bad"))
        );
        form.erase();
        assert_eq!(form.fields[0].error, None, "editing clears the error");
    }

    #[test]
    fn pickers_refuse_and_pick() {
        let mut items = vec![
            PickItem::new("1", "one", "", false),
            PickItem::new("2", "two", "", false),
        ];
        items[1].refused = Some("would make a cycle".into());
        let mut picker = Picker::new("t", items, true, ());
        picker.toggle().unwrap();
        picker.step(1);
        assert!(picker.toggle().unwrap_err().to_string().contains("cycle"));
        assert_eq!(picker.picked().unwrap(), ["1"]);
    }
}
