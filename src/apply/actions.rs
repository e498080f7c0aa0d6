//! What to do with a row of each category (SPEC, Matching flags): pure, so
//! it is tested without a store.

use crate::matching::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnNoMatch {
    Import,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOneMatch {
    Update,
    Skip,
    Import,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnMultipleMatch {
    UpdateFirst,
    UpdateLast,
    UpdateAll,
    Skip,
}

/// `--mode`: all three choices at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// import / skip / skip
    Add,
    /// skip / update / skip
    Update,
    /// import / update / skip
    Upsert,
}

/// `--master`: on update, whose non-empty values win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Master {
    /// File values overwrite stored ones (empty file values change nothing).
    #[default]
    File,
    /// File values only fill fields that are empty in the store.
    Existing,
}

/// The action written in the `action` column of a category file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Import,
    Update,
    UpdateFirst,
    UpdateLast,
    UpdateAll,
    Skip,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Import => "import",
            Action::Update => "update",
            Action::UpdateFirst => "update-first",
            Action::UpdateLast => "update-last",
            Action::UpdateAll => "update-all",
            Action::Skip => "skip",
        }
    }

    /// Which of the matched contacts (ordered by `created_at`, then id)
    /// the action updates.
    pub fn targets<T: Copy>(self, matched: &[T]) -> &[T] {
        match self {
            Action::Update | Action::UpdateFirst => &matched[..matched.len().min(1)],
            Action::UpdateLast => &matched[matched.len().saturating_sub(1)..],
            Action::UpdateAll => matched,
            Action::Import | Action::Skip => &[],
        }
    }
}

/// The three per-category choices, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub no_match: OnNoMatch,
    pub one_match: OnOneMatch,
    pub multiple_match: OnMultipleMatch,
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            no_match: OnNoMatch::Import,
            one_match: OnOneMatch::Update,
            multiple_match: OnMultipleMatch::Skip,
        }
    }
}

impl Actions {
    /// `--mode` first, then any `--on-*-match` flag given overrides its part.
    pub fn resolve(
        mode: Option<Mode>,
        no_match: Option<OnNoMatch>,
        one_match: Option<OnOneMatch>,
        multiple_match: Option<OnMultipleMatch>,
    ) -> Actions {
        let base = match mode {
            None | Some(Mode::Upsert) => Actions::default(),
            Some(Mode::Add) => Actions {
                no_match: OnNoMatch::Import,
                one_match: OnOneMatch::Skip,
                multiple_match: OnMultipleMatch::Skip,
            },
            Some(Mode::Update) => Actions {
                no_match: OnNoMatch::Skip,
                one_match: OnOneMatch::Update,
                multiple_match: OnMultipleMatch::Skip,
            },
        };
        Actions {
            no_match: no_match.unwrap_or(base.no_match),
            one_match: one_match.unwrap_or(base.one_match),
            multiple_match: multiple_match.unwrap_or(base.multiple_match),
        }
    }

    pub fn action(&self, category: Category) -> Action {
        match category {
            Category::NoMatch => match self.no_match {
                OnNoMatch::Import => Action::Import,
                OnNoMatch::Skip => Action::Skip,
            },
            Category::OneMatch => match self.one_match {
                OnOneMatch::Update => Action::Update,
                OnOneMatch::Skip => Action::Skip,
                OnOneMatch::Import => Action::Import,
            },
            Category::MultipleMatch => match self.multiple_match {
                OnMultipleMatch::UpdateFirst => Action::UpdateFirst,
                OnMultipleMatch::UpdateLast => Action::UpdateLast,
                OnMultipleMatch::UpdateAll => Action::UpdateAll,
                OnMultipleMatch::Skip => Action::Skip,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(actions: &Actions) -> [&'static str; 3] {
        Category::ALL.map(|c| actions.action(c).as_str())
    }

    #[test]
    fn modes_set_all_three() {
        assert_eq!(
            all(&Actions::resolve(None, None, None, None)),
            ["import", "update", "skip"]
        );
        assert_eq!(
            all(&Actions::resolve(Some(Mode::Add), None, None, None)),
            ["import", "skip", "skip"]
        );
        assert_eq!(
            all(&Actions::resolve(Some(Mode::Update), None, None, None)),
            ["skip", "update", "skip"]
        );
        assert_eq!(
            all(&Actions::resolve(Some(Mode::Upsert), None, None, None)),
            ["import", "update", "skip"]
        );
    }

    #[test]
    fn explicit_choices_override_the_mode() {
        let actions = Actions::resolve(
            Some(Mode::Add),
            None,
            Some(OnOneMatch::Import),
            Some(OnMultipleMatch::UpdateAll),
        );
        assert_eq!(all(&actions), ["import", "import", "update-all"]);
    }

    #[test]
    fn targets_follow_created_order() {
        let matched = [10, 11, 12];
        assert_eq!(Action::UpdateFirst.targets(&matched), &[10]);
        assert_eq!(Action::UpdateLast.targets(&matched), &[12]);
        assert_eq!(Action::UpdateAll.targets(&matched), &[10, 11, 12]);
        assert_eq!(Action::Update.targets(&matched[..1]), &[10]);
        assert!(Action::Skip.targets(&matched).is_empty());
        assert!(Action::Import.targets(&matched).is_empty());
        assert!(Action::UpdateLast.targets::<i32>(&[]).is_empty());
    }
}
