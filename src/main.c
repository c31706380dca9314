/* kiro2api entry point (placeholder while the foundation lands). */
int main(void)
{
    return 0;
}
