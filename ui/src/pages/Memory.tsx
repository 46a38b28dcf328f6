/**
 * The Memory page. `#/memory` lists collections (paged), creates, imports, exports and deletes
 * them; `#/memory/<name>` shows one collection with three tabs: Search (with explain), Context
 * pack (a preview of `/context`) and Upload (files into `/documents`, in batches). The open tab
 * and the last query submitted live in the URL query (`?tab=context&q=...&budget=800`), and a
 * reload with a query runs it again.
 */

import { Collections } from "./memory/CollectionList";
import { CollectionView } from "./memory/CollectionView";
import "./Memory.css";

export function Memory({ collection, params }: { collection: string | null; params: URLSearchParams }) {
  return collection === null ? <Collections /> : <CollectionView name={collection} params={params} />;
}
