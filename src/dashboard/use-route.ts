// The current hash route, followed without reloading the page.
import { useEffect, useState } from "preact/hooks";
import { parseRoute, type Route } from "./route.js";

/** The route of the location's hash, updated on hashchange. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
