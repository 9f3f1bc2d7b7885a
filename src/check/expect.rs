//! What the checker expects of each element: the rule of the profile the tree was
//! made with, but never less than the Basic Profile (with the same options). A
//! profile tells the judge which replacements to expect (pseudonyms, fixed values,
//! shifted dates); it cannot make an attribute the Basic Profile removes count as
//! not identifying. An empty site profile therefore does not make its output clean.

use crate::profile::{self, Action, Code, CompiledProfile, Decision, ProfileErrors};
use dicom_core::VR;
use std::borrow::Cow;

pub struct Expected {
    /// The profile named by `check --profile` (and `--option`).
    pub profile: CompiledProfile,
    /// `basic` with the profile's options: the floor of what counts as identifying.
    floor: CompiledProfile,
}

impl Expected {
    pub fn new(profile: CompiledProfile) -> Result<Expected, ProfileErrors> {
        let options: Vec<String> = profile.options.iter().map(|o| o.to_string()).collect();
        let floor = profile::compile::load_with_options("basic", &options)?;
        Ok(Expected { profile, floor })
    }

    /// The action an element is judged by: the profile's, unless the profile keeps
    /// a value the Basic Profile does not.
    /// An element stored with another VR than its rule names (a safe private
    /// attribute) is not the element the rule means: it is judged as removed.
    pub fn action(&self, tag: u32, creator: Option<&str>, vr: VR) -> Cow<'_, Action> {
        let decision = self.profile.decide(tag, creator);
        if matches!(decision, Decision::Rule(r) if !r.admits_vr(vr)) {
            return Cow::Owned(Action::Remove);
        }
        let own = lenient(&decision);
        if !own.keeps_value() {
            return own;
        }
        let floor_decision = self.floor.decide(tag, creator);
        if matches!(floor_decision, Decision::Rule(r) if !r.admits_vr(vr)) {
            return Cow::Owned(Action::Remove);
        }
        let floor = lenient(&floor_decision);
        if floor.keeps_value() { own } else { floor }
    }
}

/// The action to judge an element by. A compound code of Table E.1-1 may resolve,
/// per IOD, to any of its parts; the check accepts each of them, so Z/D and X/Z/D
/// are judged as "a dummy or empty".
fn lenient<'a>(decision: &Decision<'a>) -> Cow<'a, Action> {
    let action = decision.action();
    match decision {
        Decision::Rule(r)
            if matches!(r.code, Some(Code::ZD | Code::XZD)) && *action == Action::Empty =>
        {
            Cow::Owned(Action::Dummy)
        }
        _ => Cow::Borrowed(action),
    }
}
