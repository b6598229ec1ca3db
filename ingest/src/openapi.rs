//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.

use serde_json::{Value, json};

fn err_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "413": {"$ref": "#/components/responses/Error"},
        "422": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"}
    })
}

fn write_op(summary: &str, body: Option<&str>, key_required: bool) -> Value {
    let mut params = vec![
        json!({"$ref": "#/components/parameters/Wait"}),
        json!({"$ref": "#/components/parameters/CorrelationId"}),
        json!({"name": "Idempotency-Key", "in": "header", "required": key_required, "schema": {"type": "string", "maxLength": 255},
               "description": "Same key from the same tenant = same command: a retry is never applied twice."}),
    ];
    if summary.contains("{id}") {
        params.push(json!({"$ref": "#/components/parameters/InvoiceId"}));
    }
    let mut responses = err_responses();
    responses["202"] = json!({"description": "Acknowledged by the broker (or still pending after ?wait=applied timed out)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}});
    responses["200"] = json!({"description": "With ?wait=applied: the outcome",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandStatus"}}}});
    let mut op = json!({"summary": summary, "parameters": params, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": schema != "VoidInvoice" && schema != "IssueInvoice",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    op
}

/// The document.
pub fn document() -> Value {
    let decimal = json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "examples": ["1234.50"]});
    let date = json!({"type": "string", "format": "date"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "billstream", "version": "1",
                 "description": "Multi-tenant invoicing. Writes are acknowledged once on Kafka and applied asynchronously; amounts are decimal strings."},
        "security": [{"ApiKey": []}],
        "paths": {
            "/v1/invoices": {
                "post": write_op("Create an invoice (draft)", Some("CreateInvoice"), false),
                "get": {"summary": "List invoices", "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": ["draft", "open", "paid", "void"]}},
                    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
                    "responses": {"200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvoicePage"}}}},
                                  "401": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/invoices/{id}": {"get": {"summary": "One invoice with lines, totals, payments, status and balance due",
                "parameters": [{"$ref": "#/components/parameters/InvoiceId"}],
                "responses": {"200": {"description": "The invoice", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invoice"}}}},
                              "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
            "/v1/invoices/{id}/issue": {"post": write_op("Issue {id}: it becomes payable", Some("IssueInvoice"), false)},
            "/v1/invoices/{id}/payments": {"post": write_op("Record a payment on {id}", Some("RecordPayment"), true)},
            "/v1/invoices/{id}/void": {"post": write_op("Void {id} (only without payments)", Some("VoidInvoice"), false)},
            "/v1/commands:batch": {"post": {"summary": "Many commands in one request, each accepted or rejected on its own, in order",
                "parameters": [{"$ref": "#/components/parameters/Wait"}, {"$ref": "#/components/parameters/CorrelationId"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["commands"],
                    "properties": {"commands": {"type": "array", "items": {"$ref": "#/components/schemas/BatchItem"}}}}}}},
                "responses": {"200": {"description": "Per-item results", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"accepted": {"type": "integer"}, "rejected": {"type": "integer"},
                                   "results": {"type": "array", "items": {"type": "object"}}}}}}},
                              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                              "413": {"$ref": "#/components/responses/Error"}}}},
            "/v1/commands/{id}": {"get": {"summary": "Outcome of a command: pending, applied, or rejected with a reason code",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandStatus"}}}},
                              "401": {"$ref": "#/components/responses/Error"}}}},
            "/v1/summary": {"get": {"summary": "Per currency: outstanding, overdue, paid this month, counts by status",
                "parameters": [{"name": "as_of", "in": "query", "schema": date}],
                "responses": {"200": {"description": "Summary"}, "401": {"$ref": "#/components/responses/Error"}}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        },
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "parameters": {
                "InvoiceId": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"}},
                "Wait": {"name": "wait", "in": "query", "schema": {"enum": ["applied"]}, "description": "Block until the processors applied or rejected the command(s)."},
                "CorrelationId": {"name": "X-Correlation-Id", "in": "header", "schema": {"type": "string"}, "description": "Propagated to Kafka headers, events and logs; generated when absent."}
            },
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Decimal": decimal,
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}},
                "Line": {"type": "object", "required": ["description", "quantity", "unit_price"], "additionalProperties": false, "properties": {
                    "description": {"type": "string"}, "quantity": {"$ref": "#/components/schemas/Decimal"},
                    "unit_price": {"$ref": "#/components/schemas/Decimal"},
                    "tax_rate": {"$ref": "#/components/schemas/Decimal", "description": "percent, 0 to 100"}}},
                "CreateInvoice": {"type": "object", "required": ["customer_id", "currency", "issue_date", "due_date", "lines"], "additionalProperties": false,
                    "properties": {"invoice_id": {"type": "string"}, "customer_id": {"type": "string"}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "issue_date": date, "due_date": date, "lines": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/Line"}},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}}, "idempotency_key": {"type": "string"}}},
                "RecordPayment": {"type": "object", "required": ["amount", "currency", "method"], "additionalProperties": false, "properties": {
                    "amount": {"$ref": "#/components/schemas/Decimal"}, "currency": {"type": "string"}, "method": {"type": "string"},
                    "external_reference": {"type": "string"}, "received_on": date, "idempotency_key": {"type": "string"}}},
                "IssueInvoice": {"type": "object", "additionalProperties": false, "properties": {"idempotency_key": {"type": "string"}}},
                "VoidInvoice": {"type": "object", "additionalProperties": false, "properties": {"reason": {"type": "string"}, "idempotency_key": {"type": "string"}}},
                "BatchItem": {"type": "object", "required": ["type"], "description": "One of the write bodies plus `type` (create_invoice | issue_invoice | record_payment | void_invoice) and, except for create, `invoice_id`.",
                    "properties": {"type": {"enum": ["create_invoice", "issue_invoice", "record_payment", "void_invoice"]}, "invoice_id": {"type": "string"}}},
                "Accepted": {"type": "object", "properties": {"command_id": {"type": "string"}, "invoice_id": {"type": "string"}, "status": {"const": "accepted"}}},
                "CommandStatus": {"type": "object", "properties": {"command_id": {"type": "string"}, "status": {"enum": ["pending", "applied", "rejected"]},
                    "command_type": {"type": "string"}, "invoice_id": {"type": "string"},
                    "reason": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Invoice": {"type": "object", "properties": {"invoice_id": {"type": "string"}, "customer_id": {"type": "string"}, "currency": {"type": "string"},
                    "status": {"enum": ["draft", "open", "paid", "void"]}, "issue_date": date, "due_date": date,
                    "lines": {"type": "array", "items": {"type": "object"}}, "subtotal": {"$ref": "#/components/schemas/Decimal"},
                    "tax": {"$ref": "#/components/schemas/Decimal"}, "total": {"$ref": "#/components/schemas/Decimal"},
                    "amount_paid": {"$ref": "#/components/schemas/Decimal"}, "balance_due": {"$ref": "#/components/schemas/Decimal"},
                    "payments": {"type": "array", "items": {"type": "object"}}, "metadata": {"type": "object"}}},
                "InvoicePage": {"type": "object", "properties": {"invoices": {"type": "array", "items": {"$ref": "#/components/schemas/Invoice"}},
                    "next_page_token": {"type": ["string", "null"]}}}
            }
        }
    })
}
