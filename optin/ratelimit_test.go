package optin_test

import (
	"testing"
	"time"

	"consentmail/optin"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    optin.Rate
		wantErr bool
	}{
		{in: "10/min", want: optin.Rate{N: 10, Per: time.Minute}},
		{in: "10/minute", want: optin.Rate{N: 10, Per: time.Minute}},
		{in: "4/m", want: optin.Rate{N: 4, Per: time.Minute}},
		{in: "1/s", want: optin.Rate{N: 1, Per: time.Second}},
		{in: "5/sec", want: optin.Rate{N: 5, Per: time.Second}},
		{in: "5/second", want: optin.Rate{N: 5, Per: time.Second}},
		{in: "2/h", want: optin.Rate{N: 2, Per: time.Hour}},
		{in: "2/hour", want: optin.Rate{N: 2, Per: time.Hour}},
		{in: " 10/min\n", want: optin.Rate{N: 10, Per: time.Minute}},
		{in: "1000000/h", want: optin.Rate{N: 1000000, Per: time.Hour}},
		{in: "0", want: optin.Rate{}},
		{in: "", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "10", wantErr: true},
		{in: "0/min", wantErr: true},
		{in: "-1/min", wantErr: true},
		{in: "1.5/min", wantErr: true},
		{in: "10/day", wantErr: true},
		{in: "10/", wantErr: true},
		{in: "/min", wantErr: true},
		{in: "10 /min", wantErr: true},
		{in: "10/ min", wantErr: true},
		{in: "10/min/s", wantErr: true},
		{in: "ten/min", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := optin.ParseRate(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("ParseRate(%q): got %+v, nil; want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseRate(%q): got %+v, %v; want %+v, nil", tc.in, got, err, tc.want)
			}
			back, err := optin.ParseRate(got.String())
			if err != nil || back != got {
				t.Errorf("ParseRate(%q.String() = %q): got %+v, %v; want %+v", tc.in, got.String(), back, err, got)
			}
		})
	}
}
