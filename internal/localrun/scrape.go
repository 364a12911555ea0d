package localrun

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrapeDedupe sums pipeline_dedupe_hits_total by its kind label (natural, conflicting) over the
// workers' /metrics. Workers that cannot be reached contribute nothing.
func scrapeDedupe(ports []int) map[string]float64 {
	return scrapeCounter(ports, "pipeline_dedupe_hits_total", "kind")
}

// scrapeCounter sums the counter family by the values of labels (joined with "/") over the
// workers' /metrics.
func scrapeCounter(ports []int, family string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, p := range ports {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(p)+"/metrics", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, family+"{") {
				continue
			}
			have, value, ok := strings.Cut(line[len(family)+1:], "} ")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			vals := map[string]string{}
			for _, l := range strings.Split(have, ",") {
				if k, val, ok := strings.Cut(l, "="); ok {
					vals[k] = strings.Trim(val, `"`)
				}
			}
			var key []string
			for _, l := range labels {
				key = append(key, vals[l])
			}
			out[strings.Join(key, "/")] += v
		}
		resp.Body.Close()
	}
	return out
}
