package controller

import (
	"fmt"

	"github.com/octoacme/octoroll/model"
)

// lengthErrors reports every free-text field of s longer than its limit (model's
// Max*Len), naming the field.
func (s Spec) lengthErrors() []error {
	var errs []error
	check := func(field, v string, max int) {
		if err := model.CheckLength(field, v, max); err != nil {
			errs = append(errs, err)
		}
	}
	list := func(field string, vs []string, max int) {
		for i, v := range vs {
			check(fmt.Sprintf("%s[%d]", field, i), v, max)
		}
	}
	r := s.Release
	check("release.name", r.Name, model.MaxLabelLen)
	check("release.summary", r.Summary, model.MaxTextLen)
	check("release.rollbackPlan", r.RollbackPlan, model.MaxTextLen)
	list("release.notableChanges", r.NotableChanges, model.MaxTextLen)
	list("release.migrationSteps", r.MigrationSteps, model.MaxTextLen)
	list("release.knownIssues", r.KnownIssues, model.MaxTextLen)
	list("smokeChecks", s.SmokeChecks, model.MaxLabelLen)
	for i, c := range s.CustomChecks {
		check(fmt.Sprintf("customChecks[%d].name", i), c.Name, model.MaxLabelLen)
	}
	for i, w := range s.Waivers {
		p := fmt.Sprintf("waivers[%d]", i)
		check(p+".item", w.Item, model.MaxLabelLen)
		check(p+".reason", w.Reason, model.MaxReasonLen)
		check(p+".by", w.By, model.MaxActorLen)
	}
	return errs
}
