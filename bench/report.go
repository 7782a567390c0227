package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// stat summarizes the samples of one figure.
type stat struct {
	Unit    string    `json:"unit"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

func newStat(unit string, samples []float64) *stat {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &stat{Unit: unit, Median: med, Min: s[0], Max: s[len(s)-1], Samples: samples}
}

func (s *stat) String() string {
	if s == nil {
		return "–"
	}
	if len(s.Samples) == 1 || s.Min == s.Max {
		return fmtVal(s.Median, s.Unit)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtVal(s.Median, s.Unit), fmtNum(s.Min, s.Unit), fmtNum(s.Max, s.Unit))
}

func fmtNum(v float64, unit string) string {
	switch unit {
	case "s":
		if v < 1 {
			return fmt.Sprintf("%.0f ms", v*1000)
		}
		return fmt.Sprintf("%.2f", v)
	case "MB":
		return fmt.Sprintf("%.0f", v)
	case "ev/s":
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.3g", v)
}

func fmtVal(v float64, unit string) string {
	n := fmtNum(v, unit)
	if unit == "s" && v < 1 {
		return n
	}
	if unit == "ev/s" {
		return n + " ev/s"
	}
	return n + " " + unit
}

// line is one row of the report: our figure, the baseline's, their ratio
// (of medians) and the target the issue sets.
type line struct {
	ID       string  `json:"id"`
	What     string  `json:"what"`
	Ours     *stat   `json:"ours"`
	Baseline string  `json:"baseline,omitempty"`
	Base     *stat   `json:"base,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"`
	// Met is "yes", "no" or "" (no target).
	Met  string `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
}

// results is everything a run measured.
type results struct {
	Date    string   `json:"date"`
	Machine string   `json:"machine"`
	Load    string   `json:"loadBefore"`
	LoadEnd string   `json:"loadAfter"`
	Rows    int      `json:"rows"`
	Reps    int      `json:"reps"`
	Elapsed string   `json:"elapsed"`
	Lines   []line   `json:"lines"`
	Notes   []string `json:"notes,omitempty"`
}

// add appends a row; ratio is ours/base of medians when both exist. maxRatio
// > 0 sets the target "≤ maxRatio×", minRatio > 0 "≥ minRatio×".
func (r *results) add(l line) {
	if l.Ours != nil && l.Base != nil && l.Base.Median > 0 && l.Ours.Unit == l.Base.Unit {
		l.Ratio = math.Round(l.Ours.Median/l.Base.Median*1000) / 1000
	}
	r.Lines = append(r.Lines, l)
}

func (r *results) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nworklog bench — %s\n%s; %d events, %d repetitions, load %s → %s, took %s\n\n",
		r.Date, r.Machine, r.Rows, r.Reps, r.Load, r.LoadEnd, r.Elapsed)
	fmt.Fprintln(w, "| id | measurement | ours: median (min–max) | baseline | baseline: median (min–max) | ratio | target | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, l := range r.Lines {
		ratio := ""
		if l.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f×", l.Ratio)
		}
		base := ""
		if l.Base != nil {
			base = l.Base.String()
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l.ID, l.What, l.Ours, l.Baseline, base, ratio, l.Target, l.Met)
	}
	var notes []string
	for _, l := range r.Lines {
		if l.Note != "" {
			notes = append(notes, l.ID+": "+l.Note)
		}
	}
	notes = append(notes, r.Notes...)
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+strings.TrimSpace(n))
		}
	}
}

func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.ToUpper(p))
		}
	}
	return out
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
