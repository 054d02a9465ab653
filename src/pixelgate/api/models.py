"""``GET /v1/models`` and ``GET /v1/models/{id}``: one path, two APIs.

OpenAI's SDKs and Google's (whose default API version is ``v1``) both read the model list here. A
Gemini client gives itself away by its key header (``x-goog-api-key`` or ``?key=``) or its
``x-goog-api-client`` header, and gets Gemini ``Model`` resources; everyone else gets OpenAI's list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from pixelgate.api import gemini, openai
from pixelgate.api.auth import authenticate
from pixelgate.api.deps import CatalogDep
from pixelgate.api.errors import dialect_by_client, is_gemini

router = APIRouter(dependencies=[Depends(dialect_by_client), Depends(authenticate)])


@router.get("/v1/models")
async def list_models(request: Request, catalog: CatalogDep) -> dict[str, Any]:
    if is_gemini(request):
        params = request.query_params
        return gemini.model_page(catalog, params.get("pageSize"), params.get("pageToken"))
    return openai.model_list(catalog)


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request, catalog: CatalogDep) -> dict[str, Any]:
    if is_gemini(request):
        return gemini.model_by_name(catalog, model_id)
    return openai.model_entry(catalog, model_id)
