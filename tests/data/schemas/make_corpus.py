#!/usr/bin/env python3
"""Builds tests/data/schemas/corpus.jsonl: realistic JSON Schemas (tool/function parameters, API payloads, config
files, recursive structures, enums, bounded arrays, string patterns) each with one valid instance, checked with the
`jsonschema` package. Used by bench/bench_grammar (mask cost) and the constrained-decoding tests.
Run from the repository root: python3 tests/data/schemas/make_corpus.py"""
import json, random, sys
import jsonschema

rng = random.Random(16)
S = lambda **kw: dict(type="string", **kw)
I = lambda **kw: dict(type="integer", **kw)
N = lambda **kw: dict(type="number", **kw)
B = {"type": "boolean"}
E = lambda *v: {"type": "string", "enum": list(v)}
A = lambda items, **kw: dict(type="array", items=items, **kw)

def O(props, required=None, **kw):
    """An object; required=None means all properties are required (OpenAI strict style)."""
    d = {"type": "object", "properties": props}
    d["required"] = list(props) if required is None else required
    d["additionalProperties"] = kw.pop("additional", False)
    d.update(kw)
    return d

def fn(name, desc, params):
    return name, dict(params, description=desc)

corpus = []
def add(name, schema):
    corpus.append((name, schema))

# ---- tool / function parameter schemas
add(*fn("get_weather", "Current weather", O({"location": S(description="City and country"), "unit": E("celsius", "fahrenheit")}, ["location"])))
add(*fn("search_web", "Web search", O({"query": S(minLength=1), "num_results": I(minimum=1, maximum=20), "safe_search": B}, ["query"])))
add(*fn("send_email", "Send an email", O({"to": A(S(format="email"), minItems=1, maxItems=10), "subject": S(maxLength=120), "body": S(), "cc": A(S(format="email"))}, ["to", "subject", "body"])))
add(*fn("create_event", "Calendar event", O({"title": S(), "start": S(format="date-time"), "end": S(format="date-time"), "attendees": A(S(format="email")), "location": S(), "reminder_minutes": I(minimum=0, maximum=1440)}, ["title", "start", "end"])))
add(*fn("get_stock_price", "Stock quote", O({"symbol": S(pattern="^[A-Z]{1,5}$"), "exchange": E("NYSE", "NASDAQ", "LSE", "TSE")}, ["symbol"])))
add(*fn("run_sql", "Run a read-only SQL query", O({"query": S(), "database": E("analytics", "billing", "users"), "limit": I(minimum=1, maximum=1000)}, ["query", "database"])))
add(*fn("translate", "Translate text", O({"text": S(), "source_lang": S(pattern="^[a-z]{2}$"), "target_lang": S(pattern="^[a-z]{2}$"), "formality": E("default", "more", "less")}, ["text", "target_lang"])))
add(*fn("create_issue", "GitHub issue", O({"repo": S(pattern="^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"), "title": S(), "body": S(), "labels": A(S(), maxItems=10), "assignees": A(S())}, ["repo", "title"])))
add(*fn("set_thermostat", "Thermostat", O({"temperature": N(minimum=5, maximum=35), "mode": E("heat", "cool", "auto", "off"), "room": S()})))
add(*fn("play_music", "Play music", O({"query": S(), "shuffle": B, "volume": I(minimum=0, maximum=100), "device": {"type": ["string", "null"]}})))
add(*fn("order_pizza", "Pizza order", O({"size": E("small", "medium", "large"), "toppings": A(E("cheese", "ham", "mushroom", "olive", "pepper", "onion"), maxItems=5),
     "delivery": O({"street": S(), "city": S(), "zip": S(pattern="^[0-9]{5}$")}), "notes": S()}, ["size", "toppings", "delivery"])))
add(*fn("calculate", "Evaluate an expression", O({"expression": S(minLength=1, maxLength=200)})))
add(*fn("get_directions", "Route", O({"origin": S(), "destination": S(), "mode": E("driving", "walking", "bicycling", "transit"), "avoid": A(E("tolls", "highways", "ferries"))}, ["origin", "destination"])))
add(*fn("convert_currency", "Currency", O({"amount": N(minimum=0), "from": S(pattern="^[A-Z]{3}$"), "to": S(pattern="^[A-Z]{3}$")})))
add(*fn("create_todo", "Todo item", O({"title": S(), "due": S(format="date"), "priority": I(minimum=1, maximum=5), "tags": A(S(), maxItems=8), "done": B}, ["title"])))
add(*fn("read_file", "Read a file", O({"path": S(), "encoding": E("utf-8", "latin-1", "base64"), "max_bytes": I(minimum=1)}, ["path"])))
add(*fn("write_file", "Write a file", O({"path": S(), "content": S(), "append": B, "mode": S(pattern="^[0-7]{3}$")}, ["path", "content"])))
add(*fn("http_request", "HTTP request", O({"method": E("GET", "POST", "PUT", "DELETE", "PATCH"), "url": S(format="uri"), "headers": {"type": "object", "additionalProperties": S()}, "body": S(), "timeout_s": N(minimum=0, maximum=300)}, ["method", "url"])))
add(*fn("resize_image", "Resize", O({"image_id": S(format="uuid"), "width": I(minimum=1, maximum=10000), "height": I(minimum=1, maximum=10000), "format": E("png", "jpeg", "webp"), "keep_aspect": B}, ["image_id", "width", "height"])))
add(*fn("book_flight", "Flight booking", O({"from_airport": S(pattern="^[A-Z]{3}$"), "to_airport": S(pattern="^[A-Z]{3}$"), "date": S(format="date"), "passengers": A(O({"first_name": S(), "last_name": S(), "age": I(minimum=0, maximum=120)}), minItems=1, maxItems=9), "cabin": E("economy", "premium", "business", "first")}, ["from_airport", "to_airport", "date", "passengers"])))
add(*fn("book_hotel", "Hotel booking", O({"city": S(), "check_in": S(format="date"), "check_out": S(format="date"), "guests": I(minimum=1, maximum=10), "rooms": I(minimum=1, maximum=5), "max_price": N(minimum=0)}, ["city", "check_in", "check_out"])))
add(*fn("lookup_user", "User lookup", O({"user_id": {"anyOf": [I(minimum=1), S(format="uuid")]}, "fields": A(E("name", "email", "phone", "address", "created_at"))}, ["user_id"])))
add(*fn("schedule_reminder", "Reminder", O({"message": S(), "at": S(format="date-time"), "repeat": {"type": ["string", "null"], "enum": ["daily", "weekly", "monthly", None]}})))
add(*fn("control_lights", "Smart lights", O({"room": E("kitchen", "bedroom", "living_room", "office"), "on": B, "brightness": I(minimum=0, maximum=100), "color": S(pattern="^#[0-9a-fA-F]{6}$")}, ["room", "on"])))
add(*fn("search_products", "Shop search", O({"query": S(), "category": E("electronics", "books", "clothing", "home", "toys"), "price_min": N(minimum=0), "price_max": N(minimum=0), "sort": E("relevance", "price_asc", "price_desc", "rating"), "page": I(minimum=1)}, ["query"])))
add(*fn("summarize", "Summarize a document", O({"document_id": S(), "max_words": I(minimum=10, maximum=500), "style": E("bullet", "paragraph", "tldr")}, ["document_id"])))
add(*fn("execute_python", "Run code", O({"code": S(), "timeout": I(minimum=1, maximum=60)}, ["code"])))
add(*fn("create_user", "Create account", O({"username": S(pattern="^[a-z][a-z0-9_]{2,15}$"), "email": S(format="email"), "password": S(minLength=8, maxLength=64), "role": E("admin", "editor", "viewer")}, ["username", "email", "password"])))
add(*fn("get_news", "Headlines", O({"topic": S(), "country": S(pattern="^[a-z]{2}$"), "count": I(minimum=1, maximum=50)}, ["topic"])))
add(*fn("transfer_money", "Bank transfer", O({"from_account": S(pattern="^[0-9]{8,12}$"), "to_account": S(pattern="^[0-9]{8,12}$"), "amount": N(exclusiveMinimum=0, maximum=1000000), "currency": S(pattern="^[A-Z]{3}$"), "memo": S(maxLength=140)}, ["from_account", "to_account", "amount", "currency"])))
add(*fn("kubectl_scale", "Scale deployment", O({"namespace": S(), "deployment": S(), "replicas": I(minimum=0, maximum=100)})))
add(*fn("geocode", "Address to coordinates", O({"address": S(), "bounds": {"type": "array", "prefixItems": [N(minimum=-90, maximum=90), N(minimum=-180, maximum=180), N(minimum=-90, maximum=90), N(minimum=-180, maximum=180)], "items": False, "minItems": 4}}, ["address"])))
add(*fn("classify_ticket", "Support triage", O({"category": E("billing", "bug", "feature_request", "account", "other"), "urgency": I(minimum=1, maximum=4), "summary": S(maxLength=200), "needs_human": B})))
add(*fn("extract_entities", "NER", O({"entities": A(O({"text": S(), "type": E("PERSON", "ORG", "LOC", "DATE", "MONEY"), "start": I(minimum=0), "end": I(minimum=0)}))})))
add(*fn("rate_answer", "Grading", O({"score": N(minimum=0, maximum=1), "reasoning": S(), "verdict": E("correct", "partially_correct", "incorrect")})))
add(*fn("plan_trip", "Itinerary", O({"destination": S(), "days": A(O({"day": I(minimum=1, maximum=30), "activities": A(S(), minItems=1, maxItems=6), "hotel": {"type": ["string", "null"]}}), minItems=1, maxItems=14), "budget_usd": N(minimum=0)})))
add(*fn("git_commit", "Commit", O({"message": S(minLength=1, maxLength=72), "files": A(S(), minItems=1), "amend": B}, ["message", "files"])))
add(*fn("send_sms", "SMS", O({"phone": S(pattern="^\\+[1-9][0-9]{7,14}$"), "text": S(maxLength=160)})))
add(*fn("query_logs", "Log search", O({"service": S(), "level": E("debug", "info", "warn", "error"), "since": S(format="date-time"), "contains": S(), "limit": I(minimum=1, maximum=500)}, ["service"])))
add(*fn("update_inventory", "Stock update", O({"sku": S(pattern="^[A-Z]{3}-[0-9]{4}$"), "delta": I(minimum=-1000, maximum=1000), "warehouse": E("east", "west", "central")})))

# ---- API payloads
address = O({"street": S(), "city": S(), "state": S(), "postal_code": S(), "country": S(pattern="^[A-Z]{2}$")}, ["street", "city", "country"])
add("user_profile", O({"id": I(minimum=1), "name": S(), "email": S(format="email"), "address": address, "phones": A(O({"kind": E("home", "work", "mobile"), "number": S()})), "created_at": S(format="date-time"), "verified": B}, ["id", "name", "email"]))
add("order", O({"order_id": S(format="uuid"), "customer_id": I(minimum=1), "items": A(O({"sku": S(), "quantity": I(minimum=1, maximum=99), "unit_price": N(minimum=0)}), minItems=1), "shipping": address, "status": E("pending", "paid", "shipped", "delivered", "cancelled"), "total": N(minimum=0)}))
add("invoice", O({"number": S(pattern="^INV-[0-9]{6}$"), "issued": S(format="date"), "due": S(format="date"), "lines": A(O({"description": S(), "amount": N()}), minItems=1), "tax_rate": N(minimum=0, maximum=1), "paid": B}))
add("product", O({"id": S(), "name": S(), "description": S(), "price": N(minimum=0), "currency": E("USD", "EUR", "GBP", "JPY"), "tags": A(S(), maxItems=10), "dimensions": O({"width": N(minimum=0), "height": N(minimum=0), "depth": N(minimum=0)}), "in_stock": B}, ["id", "name", "price", "currency"]))
add("blog_post", O({"title": S(), "slug": S(pattern="^[a-z0-9]+(-[a-z0-9]+)*$"), "author": O({"name": S(), "url": S(format="uri")}, ["name"]), "body": S(), "tags": A(S()), "published": {"type": ["string", "null"], "format": "date-time"}, "comments": A(O({"user": S(), "text": S(), "likes": I(minimum=0)}))}, ["title", "slug", "author", "body"]))
add("payment_intent", O({"id": S(pattern="^pi_[A-Za-z0-9]{12}$"), "amount": I(minimum=1), "currency": S(pattern="^[a-z]{3}$"), "status": E("requires_payment_method", "processing", "succeeded", "canceled"), "metadata": {"type": "object", "additionalProperties": S()}, "livemode": B}))
add("webhook_event", {"anyOf": [O({"type": {"const": "user.created"}, "user_id": I()}), O({"type": {"const": "order.paid"}, "order_id": S(), "amount": N()}), O({"type": {"const": "ping"}})]})
add("geojson_point", O({"type": {"const": "Point"}, "coordinates": {"type": "array", "prefixItems": [N(), N()], "items": False, "minItems": 2}}))
add("geojson_feature", O({"type": {"const": "Feature"}, "geometry": O({"type": E("Point", "LineString"), "coordinates": A(N(), minItems=2)}), "properties": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}))
add("paginated_users", O({"data": A(O({"id": I(), "login": S()})), "page": I(minimum=1), "per_page": I(minimum=1, maximum=100), "total": I(minimum=0), "next": {"type": ["string", "null"]}}))
add("error_response", O({"error": O({"code": I(minimum=400, maximum=599), "message": S(), "details": A(O({"field": S(), "issue": S()}))}, ["code", "message"])}))
add("oauth_token", O({"access_token": S(), "token_type": {"const": "Bearer"}, "expires_in": I(minimum=0), "refresh_token": S(), "scope": S()}, ["access_token", "token_type", "expires_in"]))
add("chat_message", O({"role": E("system", "user", "assistant", "tool"), "content": S(), "name": S()}, ["role", "content"]))
add("review", O({"product_id": S(), "rating": I(minimum=1, maximum=5), "title": S(maxLength=80), "text": S(), "recommend": B}))
add("sensor_reading", O({"sensor_id": S(), "timestamp": S(format="date-time"), "temperature_c": N(minimum=-50, maximum=150), "humidity": N(minimum=0, maximum=100), "battery": I(minimum=0, maximum=100)}))
add("log_entry", O({"ts": S(format="date-time"), "level": E("DEBUG", "INFO", "WARN", "ERROR"), "logger": S(), "msg": S(), "context": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]}}}, ["ts", "level", "msg"]))
add("shipment", O({"tracking": S(pattern="^[A-Z0-9]{10,20}$"), "carrier": E("UPS", "FedEx", "DHL", "USPS"), "events": A(O({"at": S(format="date-time"), "location": S(), "status": S()})), "delivered": B}))
add("bank_transaction", O({"id": S(format="uuid"), "date": S(format="date"), "amount": N(), "balance": N(), "description": S(), "category": {"type": ["string", "null"]}}))
add("appointment", O({"patient": O({"id": S(), "name": S(), "birth_date": S(format="date")}), "doctor_id": S(), "slot": O({"start": S(format="date-time"), "minutes": I(minimum=5, maximum=240)}), "reason": S(maxLength=500), "telehealth": B}))
add("job_posting", O({"title": S(), "company": S(), "location": S(), "remote": B, "salary": O({"min": I(minimum=0), "max": I(minimum=0), "currency": S(pattern="^[A-Z]{3}$")}), "skills": A(S(), minItems=1, maxItems=15), "employment_type": E("full_time", "part_time", "contract", "internship")}, ["title", "company", "skills", "employment_type"]))
add("recipe", O({"name": S(), "servings": I(minimum=1, maximum=50), "ingredients": A(O({"item": S(), "quantity": N(minimum=0), "unit": E("g", "kg", "ml", "l", "tsp", "tbsp", "cup", "piece")}), minItems=1), "steps": A(S(), minItems=1), "prep_minutes": I(minimum=0)}))
add("movie", O({"title": S(), "year": I(minimum=1888, maximum=2100), "genres": A(E("drama", "comedy", "action", "horror", "sci-fi", "documentary"), minItems=1, maxItems=3), "rating": N(minimum=0, maximum=10), "cast": A(O({"actor": S(), "role": S()}))}))
add("survey_response", O({"respondent": S(format="uuid"), "answers": A(O({"question_id": I(minimum=1), "choice": {"anyOf": [I(minimum=1, maximum=5), S(), B]}}))}))
add("weather_report", O({"city": S(), "current": O({"temp_c": N(), "condition": E("sunny", "cloudy", "rain", "snow", "fog")}), "forecast": A(O({"date": S(format="date"), "high_c": N(), "low_c": N(), "precip_pct": I(minimum=0, maximum=100)}), minItems=1, maxItems=7)}))
add("contact_card", O({"full_name": S(), "emails": A(S(format="email"), maxItems=3), "phone": S(pattern="^\\+?[0-9 ()-]{7,20}$"), "company": {"type": ["string", "null"]}, "birthday": S(format="date")}, ["full_name"]))
add("api_key", O({"id": S(format="uuid"), "prefix": S(pattern="^sk-[a-z0-9]{4}$"), "scopes": A(E("read", "write", "admin"), minItems=1, maxItems=3), "expires": {"type": ["string", "null"], "format": "date-time"}}))
add("cart", O({"items": A(O({"product_id": S(), "qty": I(minimum=1)}), maxItems=50), "coupon": {"type": ["string", "null"]}, "currency": E("USD", "EUR")}))
add("ticket_purchase", O({"event_id": I(minimum=1), "seats": A(O({"section": S(pattern="^[A-Z]$"), "row": I(minimum=1, maximum=60), "seat": I(minimum=1, maximum=40)}), minItems=1, maxItems=8), "email": S(format="email")}))
add("ml_prediction", O({"model": S(), "predictions": A(O({"label": S(), "score": N(minimum=0, maximum=1)}), minItems=1, maxItems=5), "latency_ms": N(minimum=0)}))
add("dns_record", O({"name": S(), "type": E("A", "AAAA", "CNAME", "MX", "TXT"), "value": S(), "ttl": I(minimum=60, maximum=86400), "priority": I(minimum=0, maximum=65535)}, ["name", "type", "value"]))
add("ip_allowlist", O({"entries": A(O({"ip": S(format="ipv4"), "comment": S()}, ["ip"]), maxItems=20)}))

# ---- config files
add("package_json", O({"name": S(pattern="^[a-z0-9-]+$"), "version": S(pattern="^[0-9]+\\.[0-9]+\\.[0-9]+$"), "description": S(), "main": S(), "scripts": {"type": "object", "additionalProperties": S()}, "dependencies": {"type": "object", "additionalProperties": S()}, "private": B}, ["name", "version"]))
add("tsconfig", O({"compilerOptions": O({"target": E("es2017", "es2020", "es2022", "esnext"), "module": E("commonjs", "esnext", "nodenext"), "strict": B, "outDir": S(), "sourceMap": B}, []), "include": A(S()), "exclude": A(S())}, ["compilerOptions"]))
add("compose_service", O({"image": S(), "ports": A(S(pattern="^[0-9]{1,5}:[0-9]{1,5}$")), "environment": {"type": "object", "additionalProperties": S()}, "restart": E("no", "always", "on-failure", "unless-stopped"), "depends_on": A(S())}, ["image"]))
add("k8s_deployment", O({"apiVersion": {"const": "apps/v1"}, "kind": {"const": "Deployment"}, "metadata": O({"name": S(), "labels": {"type": "object", "additionalProperties": S()}}, ["name"]),
     "spec": O({"replicas": I(minimum=0, maximum=50), "template": O({"containers": A(O({"name": S(), "image": S(), "ports": A(O({"containerPort": I(minimum=1, maximum=65535)}))}, ["name", "image"]), minItems=1)})})}))
add("ci_workflow", O({"name": S(), "on": A(E("push", "pull_request", "schedule"), minItems=1), "jobs": {"type": "object", "additionalProperties": O({"runs_on": S(), "steps": A(O({"name": S(), "run": S()}, ["run"]), minItems=1)})}}))
add("logging_config", O({"level": E("debug", "info", "warning", "error"), "format": S(), "handlers": A(O({"type": E("console", "file", "syslog"), "path": S(), "max_mb": I(minimum=1, maximum=1024)}, ["type"]))}))
add("database_config", O({"host": S(), "port": I(minimum=1, maximum=65535), "user": S(), "password": S(), "database": S(), "ssl": B, "pool": O({"min": I(minimum=0, maximum=100), "max": I(minimum=1, maximum=1000)})}, ["host", "port", "database"]))
add("feature_flags", {"type": "object", "additionalProperties": B})
add("nginx_server", O({"listen": I(minimum=1, maximum=65535), "server_name": A(S(), minItems=1), "root": S(), "locations": A(O({"path": S(), "proxy_pass": S(format="uri"), "cache": B}, ["path"]))}, ["listen", "server_name"]))
add("training_config", O({"model": S(), "learning_rate": N(exclusiveMinimum=0, maximum=1), "batch_size": I(minimum=1, maximum=4096), "epochs": I(minimum=1, maximum=1000), "optimizer": E("adam", "adamw", "sgd"), "warmup_steps": I(minimum=0), "fp16": B, "seed": I()}))
add("lint_rules", {"type": "object", "additionalProperties": E("off", "warn", "error")})
add("app_settings", O({"theme": E("light", "dark", "system"), "language": S(pattern="^[a-z]{2}(-[A-Z]{2})?$"), "notifications": O({"email": B, "push": B, "digest": E("never", "daily", "weekly")}), "privacy": O({"share_usage": B, "ad_personalization": B})}))
add("cron_jobs", A(O({"schedule": S(pattern="^[0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+$"), "command": S(), "enabled": B}), maxItems=20))
add("backup_policy", O({"targets": A(S(), minItems=1), "retention_days": I(minimum=1, maximum=3650), "schedule": E("hourly", "daily", "weekly"), "encrypt": B, "destination": O({"kind": E("s3", "gcs", "local"), "bucket": S()})}))
add("terraform_vars", {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}})

# ---- recursive
add("tree_node", {"$defs": {"node": O({"value": I(), "children": A({"$ref": "#/$defs/node"})}, ["value"])}, "$ref": "#/$defs/node"})
add("linked_list", {"$defs": {"cell": O({"value": S(), "next": {"anyOf": [{"$ref": "#/$defs/cell"}, {"type": "null"}]}})}, "$ref": "#/$defs/cell"})
add("filesystem", {"$defs": {"entry": {"anyOf": [O({"kind": {"const": "file"}, "name": S(), "size": I(minimum=0)}), O({"kind": {"const": "dir"}, "name": S(), "children": A({"$ref": "#/$defs/entry"})})]}}, "$ref": "#/$defs/entry"})
add("expression_ast", {"$defs": {"expr": {"anyOf": [O({"num": N()}), O({"op": E("+", "-", "*", "/"), "left": {"$ref": "#/$defs/expr"}, "right": {"$ref": "#/$defs/expr"}})]}}, "$ref": "#/$defs/expr"})
add("comment_thread", {"$defs": {"comment": O({"author": S(), "text": S(), "replies": A({"$ref": "#/$defs/comment"})}, ["author", "text"])}, "$ref": "#/$defs/comment"})
add("org_chart", {"$defs": {"person": O({"name": S(), "title": S(), "reports": A({"$ref": "#/$defs/person"}, maxItems=5)}, ["name", "title"])}, "$ref": "#/$defs/person"})
add("menu", {"$defs": {"item": O({"label": S(), "action": S(), "submenu": A({"$ref": "#/$defs/item"})}, ["label"])}, "type": "object", "properties": {"items": A({"$ref": "#/$defs/item"})}, "required": ["items"], "additionalProperties": False})
add("category_tree", {"definitions": {"cat": O({"id": I(minimum=1), "name": S(), "sub": A({"$ref": "#/definitions/cat"})}, ["id", "name"])}, "$ref": "#/definitions/cat"})
add("bool_query", {"$defs": {"q": {"anyOf": [O({"term": O({"field": S(), "value": S()})}), O({"and": A({"$ref": "#/$defs/q"}, minItems=2)}), O({"or": A({"$ref": "#/$defs/q"}, minItems=2)}), O({"not": {"$ref": "#/$defs/q"}})]}}, "$ref": "#/$defs/q"})
add("html_element", {"$defs": {"el": O({"tag": E("div", "span", "p", "ul", "li", "a"), "attrs": {"type": "object", "additionalProperties": S()}, "children": A({"anyOf": [S(), {"$ref": "#/$defs/el"}]})}, ["tag"])}, "$ref": "#/$defs/el"})
add("json_value", {})

# ---- enums, bounded arrays, tuples, patterns, small answers
add("rgb_color", {"type": "array", "prefixItems": [I(minimum=0, maximum=255)] * 3, "items": False, "minItems": 3})
add("coordinates", O({"lat": N(minimum=-90, maximum=90), "lon": N(minimum=-180, maximum=180)}))
add("classification", O({"label": E("positive", "negative", "neutral"), "confidence": N(minimum=0, maximum=1)}))
add("sentiment", E("positive", "negative", "neutral", "mixed"))
add("yes_no", {"enum": ["yes", "no"]})
add("date_range", O({"from": S(format="date"), "to": S(format="date")}))
add("semver", S(pattern="^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"))
add("top3", A(S(minLength=1, maxLength=40), minItems=3, maxItems=3))
add("keywords", O({"keywords": A(S(maxLength=30), minItems=1, maxItems=10)}))
add("answer_with_citations", O({"answer": S(), "citations": A(O({"source": I(minimum=1), "quote": S(maxLength=300)}), maxItems=5), "confidence": E("low", "medium", "high")}))
add("multiple_choice", O({"choice": E("A", "B", "C", "D"), "explanation": S(maxLength=400)}))
add("integer_answer", I(minimum=-1000000, maximum=1000000))
add("number_answer", N())
add("nullable_string", {"type": ["string", "null"]})
add("mixed_list", A({"type": ["integer", "string", "boolean", "null"]}, maxItems=12))
add("matrix", A(A(N(), minItems=3, maxItems=3), minItems=3, maxItems=3))
add("key_value_pairs", A({"type": "array", "prefixItems": [S(), I()], "items": False, "minItems": 2}, maxItems=10))
add("hex_hash", O({"algorithm": E("sha256", "sha1", "md5"), "digest": S(pattern="^[0-9a-f]{40,64}$")}))
add("time_slot", O({"day": E("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "start": S(format="time"), "end": S(format="time")}))
add("tool_call", O({"name": E("get_weather", "search_web", "send_email"), "arguments": {"type": "object", "additionalProperties": True}}))
add("function_router", {"oneOf": [O({"tool": {"const": "calculator"}, "expression": S()}), O({"tool": {"const": "search"}, "query": S(), "k": I(minimum=1, maximum=10)}), O({"tool": {"const": "none"}, "reply": S()})]})
add("grades", {"type": "object", "additionalProperties": I(minimum=0, maximum=100)})
add("color_enum_array", A(E("red", "green", "blue", "yellow", "black", "white"), minItems=1, maxItems=4))
add("unicode_text", O({"text": S(minLength=1, maxLength=50), "lang": E("ja", "zh", "ru", "ar", "hi")}))

# ---- instance generation
WORDS = "alpha beta gamma delta river stone cloud maple orbit vector quartz ember harbor lumen cedar falcon nimbus".split()
UNI = ["東京", "Zürich", "naïve café", "Привет", "مرحبا", "नमस्ते", "emoji 😀 ok", "quote \" and \\ backslash", "tab\there", "line\nbreak"]
PATTERN_EXAMPLES = {
    "^[A-Z]{1,5}$": ["AAPL", "MSFT", "GOOG"], "^[a-z]{2}$": ["en", "fr", "de"],
    "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$": ["tern-dev/tern", "octo/hello.world"], "^[0-9]{5}$": ["94110", "10001"],
    "^[A-Z]{3}$": ["USD", "EUR", "SFO"], "^[0-7]{3}$": ["644", "755"], "^#[0-9a-fA-F]{6}$": ["#ff8800", "#00AAff"],
    "^[a-z][a-z0-9_]{2,15}$": ["ann_lee", "bob42"], "^[0-9]{8,12}$": ["12345678", "987654321012"],
    "^\\+[1-9][0-9]{7,14}$": ["+14155550123"], "^[A-Z]{3}-[0-9]{4}$": ["ABC-1234"], "^[A-Z]{2}$": ["US", "DE"],
    "^INV-[0-9]{6}$": ["INV-004211"], "^[a-z0-9]+(-[a-z0-9]+)*$": ["hello-world-2", "intro"],
    "^pi_[A-Za-z0-9]{12}$": ["pi_3MtwBwLkdIwH"], "^[a-z]{3}$": ["usd"], "^[A-Z0-9]{10,20}$": ["1Z999AA10123456784"],
    "^\\+?[0-9 ()-]{7,20}$": ["+1 (415) 555-0123"], "^sk-[a-z0-9]{4}$": ["sk-ab12"], "^[A-Z]$": ["C"],
    "^[a-z0-9-]+$": ["my-package"], "^[0-9]+\\.[0-9]+\\.[0-9]+$": ["1.2.3"], "^[0-9]{1,5}:[0-9]{1,5}$": ["8080:80"],
    "^[a-z]{2}(-[A-Z]{2})?$": ["en-US", "fr"], "^[0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+$": ["*/5 * * * 1-5"],
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$": ["2.10.0-rc.1", "0.1.0"],
    "^[0-9a-f]{40,64}$": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
}
FORMATS = {"email": lambda: rng.choice(["ann@example.com", "bob.smith@mail.example.org"]),
           "date": lambda: f"2024-{rng.randint(1,12):02d}-{rng.randint(1,28):02d}",
           "date-time": lambda: f"2025-0{rng.randint(1,9)}-1{rng.randint(0,9)}T{rng.randint(10,23)}:{rng.randint(10,59)}:00Z",
           "time": lambda: f"{rng.randint(10,23)}:{rng.randint(10,59)}:00Z",
           "uuid": lambda: "123e4567-e89b-12d3-a456-42661417400" + str(rng.randint(0, 9)),
           "uri": lambda: rng.choice(["https://example.com/a/b?c=1", "http://localhost:8080/health"]),
           "ipv4": lambda: f"10.{rng.randint(0,255)}.{rng.randint(0,255)}.{rng.randint(1,254)}"}

def resolve(root, ref):
    node = root
    for part in ref[2:].split("/") if ref != "#" else []:
        node = node[part]
    return node

def gen(s, root, depth=0):
    if s is True or s == {}:
        return rng.choice([1, "x", True, None, {"k": [1, 2]}]) if depth < 3 else 0
    if "$ref" in s:
        return gen(resolve(root, s["$ref"]), root, depth + 1)
    for k in ("anyOf", "oneOf"):
        if k in s:
            opts = s[k]
            if depth > 3:  # steer recursion to a base case: the option with the fewest $refs
                opts = sorted(opts, key=lambda o: json.dumps(o).count("$ref"))[:1]
            return gen(rng.choice(opts), root, depth + 1)
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return rng.choice(s["enum"])
    t = s.get("type")
    if isinstance(t, list):
        t = rng.choice(t)
    if t is None:
        t = "object" if "properties" in s or "additionalProperties" in s else "array" if "items" in s else "string"
    if t == "null": return None
    if t == "boolean": return rng.random() < 0.5
    if t == "integer":
        lo = s.get("minimum", -50 if "maximum" not in s else s["maximum"] - 100)
        hi = s.get("maximum", lo + 500)
        return rng.randint(int(lo), int(hi))
    if t == "number":
        lo = s.get("minimum", s.get("exclusiveMinimum", -100))
        hi = s.get("maximum", s.get("exclusiveMaximum", lo + 200))
        v = round(rng.uniform(lo, hi), rng.choice([0, 1, 2, 3]))
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]: v = s["exclusiveMinimum"] + 0.5
        if "exclusiveMaximum" in s and v >= s["exclusiveMaximum"]: v = s["exclusiveMaximum"] - 0.5
        return int(v) if rng.random() < 0.3 and v == int(v) else v
    if t == "string":
        if "pattern" in s: return rng.choice(PATTERN_EXAMPLES[s["pattern"]])
        if "format" in s: return FORMATS[s["format"]]()
        lo, hi = s.get("minLength", 0), s.get("maxLength", 60)
        txt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.25: txt = rng.choice(UNI)
        while len(txt) < lo: txt += " " + rng.choice(WORDS)
        return txt[:hi] if len(txt) > hi else txt
    if t == "array":
        prefix = s.get("prefixItems", [])
        lo, hi = s.get("minItems", 0), s.get("maxItems", 4 if depth < 3 else 1)
        n = rng.randint(max(lo, min(len(prefix), hi)), max(lo, min(hi, len(prefix) + 3 if s.get("items") is not False else len(prefix))))
        if depth > 4: n = max(lo, min(n, len(prefix)))
        return [gen(prefix[i] if i < len(prefix) else s.get("items", True), root, depth + 1) for i in range(n)]
    if t == "object":
        out = {}
        req = set(s.get("required", []))
        for k, v in s.get("properties", {}).items():
            if k in req or (rng.random() < (0.6 if depth < 3 else 0.1)):
                out[k] = gen(v, root, depth + 1)
        ap = s.get("additionalProperties", False)
        if ap is not False and not s.get("properties"):
            for i in range(rng.randint(0, 3)):
                out[rng.choice(WORDS) + str(i)] = gen(ap, root, depth + 1)
        return out
    raise ValueError(f"cannot generate {s}")

def main():
    out = []
    for name, schema in corpus:
        inst = gen(schema, schema)
        jsonschema.validate(inst, schema, cls=jsonschema.Draft202012Validator)
        indent = 2 if rng.random() < 0.3 else None
        text = json.dumps(inst, ensure_ascii=False, indent=indent, separators=(",", ": ") if indent else (",", ":"))
        out.append(json.dumps({"name": name, "schema": schema, "instance": text}, ensure_ascii=False))
    with open("tests/data/schemas/corpus.jsonl", "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{len(out)} schemas", file=sys.stderr)

main()
