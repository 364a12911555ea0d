package loadgen

import "fmt"

// Catalog and page data for plausible properties. PII-like values (e-mail, IP address) only ever
// appear as tokens.
var (
	categories = []string{"shoes", "shirts", "outerwear", "accessories", "home", "kitchen", "toys", "books"}
	pages      = []string{"/", "/search", "/category/shoes", "/category/shirts", "/sale", "/cart", "/account", "/help"}
	referrers  = []string{"direct", "search", "social", "email", "affiliate"}
	payments   = []string{"card", "paypal", "gift_card", "bank_transfer"}
)

const catalogSize = 500

func sku(i int) string { return fmt.Sprintf("SKU-%05d", i) }

// priceCents is a fixed price per catalog item, between 4.99 and 204.98.
func priceCents(i int) int { return 499 + (i*7919)%20000 }

// money turns cents into a number that encodes with at most two decimals (division is correctly
// rounded, so 1999/100 is the double nearest 19.99 and encodes as 19.99).
func money(cents int) float64 { return float64(cents) / 100 }

// properties returns plausible properties for an event of type typ by customer c.
func (g *Generator) properties(typ string, c int) map[string]any {
	item := g.rng.IntN(catalogSize)
	switch typ {
	case "page_view":
		return map[string]any{
			"page":       pages[g.rng.IntN(len(pages))],
			"referrer":   referrers[g.rng.IntN(len(referrers))],
			"session_id": fmt.Sprintf("s-%08x", g.rng.Uint32()),
			"ip":         g.cfg.Tokenizer.Token("ip", fmt.Sprintf("198.51.100.%d", c%254+1)),
		}
	case "product_view":
		return map[string]any{
			"sku":      sku(item),
			"category": categories[item%len(categories)],
			"price":    money(priceCents(item)),
			"currency": "EUR",
			"page":     "/product/" + sku(item),
		}
	case "add_to_cart":
		return map[string]any{
			"sku":      sku(item),
			"qty":      1 + g.rng.IntN(3),
			"price":    money(priceCents(item)),
			"currency": "EUR",
		}
	case "remove_from_cart":
		return map[string]any{
			"sku": sku(item),
			"qty": 1 + g.rng.IntN(2),
		}
	case "checkout_started":
		items := 1 + g.rng.IntN(5)
		return map[string]any{
			"items":      items,
			"cart_value": money(items * priceCents(item)),
			"currency":   "EUR",
			"email":      g.cfg.Tokenizer.Token("email", fmt.Sprintf("customer-%d@example.com", c)),
		}
	case "purchase":
		qty := 1 + g.rng.IntN(3)
		return map[string]any{
			"order_id": fmt.Sprintf("ord-%010d", g.rng.Int64N(1e10)),
			"sku":      sku(item),
			"qty":      qty,
			"price":    money(priceCents(item)),
			"total":    money(qty * priceCents(item)),
			"currency": "EUR",
			"payment":  payments[g.rng.IntN(len(payments))],
			"email":    g.cfg.Tokenizer.Token("email", fmt.Sprintf("customer-%d@example.com", c)),
		}
	}
	return map[string]any{
		"page":   pages[g.rng.IntN(len(pages))],
		"sku":    sku(item),
		"source": "loadgen",
	}
}
